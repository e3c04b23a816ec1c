"""GeoDataset: windows of a scene as torch samples, read window by window (no dask)."""

from __future__ import annotations

import inspect
import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from geoxr.errors import BandCountError, ConfigError, WindowError
from geoxr.grid import Window, int_pair, windows_share_tiles
from geoxr.label import Scene, aoi_window_mask, make_ss_scene
from geoxr.read import BandStats, RasterioSource, RasterSource, compute_band_stats
from geoxr.read._gdal import cap_block_cache, tile_decode_cache_bytes
from geoxr.read._shared_tiles import (
    SharedTileCache,
    inherited_tile_cache,
    made_tile_cache,
    shared_tile_cache,
)
from geoxr.read.stats import model_input
from geoxr.sample._batch import Chip, Slot
from geoxr.sample._batch_reader import BatchReader, WeakBound

__all__ = ["GeoDataset", "Sample", "Transform"]

Sample = Chip
Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_SCENE_ARGS = set(inspect.signature(make_ss_scene).parameters) - {"image_uri"}


def _rasters(scene: Scene) -> list[RasterSource]:
    """The rasters a window of ``scene`` reads: the image and, if labels are a raster, that."""
    label_raster = getattr(scene.label_source, "raster_source", None)
    return [r for r in (scene.raster_source, label_raster) if r is not None]


def _tiles_shared(scene: Scene, windows: Sequence[Window]) -> bool | None:
    """Whether two windows read a tile of the image or label raster (``None``: unknown).

    Unknown where a raster a window reads does not tell its tiles (VRTs, warped
    reads, sources other than GeoTIFFs).
    """
    rasters = _rasters(scene)
    tiled = [(t, r.extent) for r in rasters if (t := r.tile_layout) is not None]
    if len(tiled) < len(rasters):
        return None
    return any(windows_share_tiles(windows, tiles, extent) for tiles, extent in tiled)


def _dtype_range(source: RasterSource) -> BandStats | None:
    """Statistics that scale unsigned integers to 0..1 (Raster Vision's ``normalize=True``).

    Examples
    --------
    >>> import os
    >>> _dtype_range(RasterioSource(os.path.join(DATA, "rasterio_rgb_byte/RGB.byte.tif")))
    BandStats(means=(0.0, 0.0, 0.0), stds=(255.0, 255.0, 255.0))
    """
    if source.dtype.kind != "u":
        return None
    top = float(np.iinfo(source.dtype).max)
    return BandStats((0.0,) * source.num_channels, (top,) * source.num_channels)


def _checked_stats(normalize: object, scene: Scene) -> BandStats | None:
    """``normalize`` if it is band statistics for the scene's bands (or ``None``)."""
    if normalize is None:
        return None
    if not isinstance(normalize, BandStats):
        raise ConfigError(
            f"normalize={normalize!r}: expected BandStats (e.g. from compute_band_stats), "
            "'stats' to compute them from the scene, True to scale unsigned integers to "
            "0..1, or None (False) for raw values."
        )
    bands = scene.raster_source.num_channels
    if len(normalize.means) != bands:
        raise BandCountError(
            f"normalize has statistics of {len(normalize.means)} bands, but scene {scene.id!r} "
            f"has {bands}. Compute them on the same bands (channel_order) as the chips."
        )
    return normalize


class GeoDataset(Dataset[Sample]):
    """A torch Dataset over planned windows of one scene.

    An item is ``(image, mask)`` (a :class:`~geoxr.sample.Chip`, a named tuple):
    a float32 ``(C, H, W)`` image tensor and an int64 ``(H, W)`` tensor of class
    ids. The mask is the null class where the image is nodata, outside the AOI or
    past the scene edge; without labels it is a scalar NaN tensor, as in Raster
    Vision. Each item is one windowed GDAL read of the image (and of the labels);
    batches fetched through a DataLoader read their windows in parallel threads,
    each straight into its slot of the batch's tensors, which the DataLoader's
    default collation then hands over without another copy.

    The dataset holds only recipes (paths, windows, statistics), so it pickles
    to DataLoader workers and gives identical batches for any ``num_workers``.

    Parameters
    ----------
    scene : Scene
        The scene to sample.
    windows : sequence of Window
        Windows on the scene grid, already planned.
    normalize : BandStats, 'stats' or bool, optional
        Per-band standardisation; ``'stats'`` computes it from the scene (one dask
        reduction). ``True`` scales unsigned integers to 0..1 by their dtype's
        largest value (uint8: / 255), as Raster Vision's ``normalize=True`` does,
        and keeps other dtypes raw; ``False`` keeps raw values. Default: raw values
        as float32. Nodata pixels are 0.
    out_size : int or (int, int), optional
        Resize every sample to this size (bilinear image; each mask pixel takes the
        class of the nearest pixel centre).
    transform : callable, optional
        ``transform(image, mask) -> (image, mask)``, applied last (augmentation).
    reuse_batch_memory : bool
        Write a batch into the memory of an earlier one that nobody holds any more
        (in DataLoader workers: that the main process let go of). Turn it off if
        the main process passes batches from workers on to other processes, which
        it cannot follow.
    """

    #: Whether windows of the plan may read the same tiles, where the raster source
    #: does not tell its tiles (then: overlapping or random windows). Reader threads
    #: then each take one band of the scene.
    _windows_share_tiles = True

    def __init__(
        self,
        scene: Scene,
        windows: Sequence[Window],
        *,
        normalize: BandStats | Literal["stats"] | bool | None = None,
        out_size: int | tuple[int, int] | None = None,
        transform: Transform | None = None,
        reuse_batch_memory: bool = True,
    ) -> None:
        self.scene = scene
        self.windows = list(windows)
        if isinstance(normalize, str) and normalize == "stats":
            normalize = compute_band_stats(scene.raster_source)  # masked as chips are
        elif isinstance(normalize, bool):
            normalize = _dtype_range(scene.raster_source) if normalize else None
        self.normalize = _checked_stats(normalize, scene)
        self.out_size = None if out_size is None else int_pair(out_size, "out_size")
        if self.out_size is not None and min(self.out_size) < 1:
            raise ConfigError(f"out_size must be at least 1 pixel, got {out_size!r}.")
        self.transform = transform
        if transform is not None and not callable(transform):
            raise ConfigError(
                f"transform={transform!r} is not callable; give a function "
                "transform(image, mask) -> (image, mask), or None."
            )
        for i, window in enumerate(self.windows):
            if not isinstance(window, Window):
                raise WindowError(
                    f"Window {i} of the dataset is a {type(window).__name__} ({window!r}), not "
                    "a geoxr Window. Convert it, e.g. geoxr.Window(w.row_off, w.col_off, "
                    "w.height, w.width) for a rasterio Window, or Window.from_box(ymin, xmin, "
                    "ymax, xmax) for a Raster Vision box."
                )
        shared = _tiles_shared(scene, self.windows)
        if shared is not None:
            self._windows_share_tiles = shared
        # Each tile read once: a worker's GDAL block cache would only keep tiles never
        # read again, in freshly faulted pages (see cap_block_cache).
        self._tiles_read_once = shared is False
        self._reuse_batch_memory = reuse_batch_memory
        self._start_reader(shared_tile_cache)

    def _start_reader(self, tile_cache: Callable[[], SharedTileCache | None]) -> None:
        """Give this dataset a reader of its own, and hold the cache ``tile_cache()`` gives.

        Wherever workers may read through the shared cache, it is made before they
        fork (so they share it) and held (its memory is freed with the last holder).
        The reader holds the dataset's methods weakly: a dropped dataset is freed at
        once, with its reader threads, their GDAL handles and its hold on the cache.
        Every copy (``copy.copy``, pickling) gets its own reader, calling its own
        methods: a copy whose ``transform`` was changed reads with that transform, and
        lives on after the dataset it was copied from.
        """
        if self._windows_share_tiles and (cache := tile_cache()) is not None:
            cache.hold(self)
        self._reader = BatchReader(
            WeakBound(self._load),
            WeakBound(self.__len__),
            WeakBound(self._place) if self._windows_share_tiles else None,
            reuse_memory=self._reuse_batch_memory,
            on_worker_start=WeakBound(self._on_worker_start),
        )

    def __getstate__(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if name != "_reader"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A dataset pickled by an earlier geoxr carries its reader: only its setting stays.
        reader = state.pop("_reader", None)
        state.setdefault("_reuse_batch_memory", getattr(reader, "reuse_memory", True))
        self.__dict__.update(state)
        # The main process makes the shared cache, as __init__ does (its workers fork
        # later); another (a spawned worker) uses the one it inherited, if any.
        main = multiprocessing.current_process().name == "MainProcess"
        self._start_reader(shared_tile_cache if main else made_tile_cache)

    @classmethod
    def from_uris(cls, image_uri: str | Sequence[str], **kwargs: Any) -> GeoDataset:
        """Build the scene with :func:`~geoxr.make_ss_scene`, then the dataset.

        Keyword arguments that :func:`~geoxr.make_ss_scene` takes go to it; the
        rest go to the dataset's constructor.
        """
        scene_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in _SCENE_ARGS}
        return cls(make_ss_scene(image_uri, **scene_kw), **kwargs)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> Sample:
        # A DataLoader without batches (batch_size=None) fetches item by item: its
        # workers are set up here (once per process), as batched ones in __getitems__.
        self._reader.start()
        return self._transformed(self._sample(self.windows[index]))

    def _on_worker_start(self) -> None:
        """Set up a DataLoader worker: share decoded tiles, or cap GDAL's block cache.

        Where windows share tiles and there are several workers, the GeoTIFFs'
        tiles come from the cache the workers share
        (:class:`~geoxr.read._shared_tiles.SharedTileCache`): a tile one worker
        decoded is copied, not decoded again, by the others. Where each tile is
        read once, or every raster reads through the shared cache, GDAL's block
        cache would only keep tiles never read again, in freshly faulted pages
        (see :func:`~geoxr.read._gdal.cap_block_cache`); through the shared
        cache, it needs room for two tiles and no more
        (:func:`~geoxr.read._gdal.tile_decode_cache_bytes`).
        """
        worker = get_worker_info()
        several = worker is not None and worker.num_workers > 1
        cache = inherited_tile_cache() if self._windows_share_tiles and several else None
        rasters = _rasters(self.scene)
        tiled = [r for r in rasters if isinstance(r, RasterioSource) and r.tile_layout is not None]
        if cache is not None:
            for raster in tiled:
                raster.tile_cache = cache
        if cache is not None and len(tiled) == len(rasters):
            cap_block_cache(tile_decode_cache_bytes([r.decoded_tile_bytes for r in tiled]))
        elif self._tiles_read_once:
            cap_block_cache()

    def _load(self, index: int, slot: Slot) -> Sample:
        return self._sample(self.windows[index], slot)

    def _place(self, index: int) -> tuple[int, int]:
        """Where window ``index`` lies (column, row): reader threads each take a band."""
        window = self.windows[index]
        return window.xmin, window.ymin

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """Fetch a batch: its windows are read in parallel threads, the next batch ahead.

        Where windows may share tiles, each thread reads one band of the scene, so a
        shared tile is mostly decoded once. Where each tile is read once (the windows
        of the image and label rasters share none), a DataLoader worker caps GDAL's
        block cache (see :func:`~geoxr.read._gdal.cap_block_cache`): caching a tile
        would only cost memory and page faults.
        """
        # Both ways set this process up first, once: __getitem__ and the reader's fetch.
        # A subclass's own __getitem__ (Raster Vision's way to customise) is its items.
        if len(indices) < 2 or type(self).__getitem__ is not GeoDataset.__getitem__:
            return [self[i] for i in indices]
        return [self._transformed(sample) for sample in self._reader.fetch(indices)]

    def _sample(self, window: Window, slot: Slot | None = None) -> Sample:
        source, label_source = self.scene.raster_source, self.scene.label_source
        shape = (*source.chip_prefix, *window.shape)
        views = None
        if slot is not None and self.out_size is None and self.transform is None:
            mask_layout = (
                (window.shape, torch.int64) if label_source is not None else ((), torch.float32)
            )
            views = slot.claim((shape, torch.float32), mask_layout)
        x = torch.empty(shape, dtype=torch.float32) if views is None else views[0]
        # Read straight into the float32 image (GDAL casts as it decodes), standardised in place.
        image = x.numpy()
        invalid = source.read_into(window, image)
        model_input(image, self.normalize, invalid=invalid, out=image)
        if label_source is None:
            y = torch.tensor(float("nan")) if views is None else views[1].fill_(float("nan"))
        else:
            labels = label_source.get_label_arr(
                window, out=None if views is None else views[1].numpy()
            )
            if self.scene.aoi is not None:
                outside = aoi_window_mask(self.scene.aoi, self.scene.grid, window)
                if outside.any():
                    invalid = outside if invalid is None else invalid | outside
            if invalid is not None:
                np.copyto(labels, label_source.null_class_id, where=invalid)
            y = torch.from_numpy(labels) if views is None else views[1]
        if self.out_size is not None and tuple(x.shape[-2:]) != self.out_size:
            x = F.interpolate(x[None], size=self.out_size, mode="bilinear", align_corners=False)[0]
            if y.ndim == 2:  # pixel centres, as the image's resize (nearest: top-left corners)
                y = F.interpolate(y[None, None].float(), size=self.out_size, mode="nearest-exact")
                y = y[0, 0].long()
        return Chip(x, y)

    def _transformed(self, sample: Sample) -> Sample:
        """``sample`` through :attr:`transform`, in the thread that asked for it.

        Never in the reader threads, whose order varies from run to run: a random
        augmentation draws from torch's or numpy's global generator in the order the
        samples are asked for, so a seeded run gives the same batches every time.
        """
        if self.transform is None:
            return sample
        return Chip(*self.transform(*sample))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scene={self.scene.id!r}, windows={len(self)})"
