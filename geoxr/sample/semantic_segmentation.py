"""Sliding-window and random-window datasets for semantic segmentation."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from geoxr.errors import GeoxrWarning, WindowError
from geoxr.grid import (
    AOIMode,
    PadDirection,
    filter_windows,
    int_pair,
    random_windows,
    sliding_windows,
)
from geoxr.label import Scene
from geoxr.read import BandStats
from geoxr.sample.dataset import GeoDataset, Transform

__all__ = [
    "SemanticSegmentationRandomWindowGeoDataset",
    "SemanticSegmentationSlidingWindowGeoDataset",
]


def _rounded(bounds: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(b, 3) for b in bounds)


class SemanticSegmentationSlidingWindowGeoDataset(GeoDataset):
    """Windows on a regular grid that covers the whole scene (see :func:`~geoxr.sliding_windows`).

    Parameters
    ----------
    scene : Scene
        The scene.
    size, stride : int or (int, int)
        Window size and step in pixels.
    padding : int or (int, int), optional
        How far windows may reach past the edges, below ``size`` (as in Raster
        Vision: every window holds a scene pixel); ``None`` covers the scene exactly.
    pad_direction : {'end', 'start', 'both'}
        Which edges get the padding.
    within_aoi : bool
        With an AOI, keep only windows wholly inside it (else: windows that intersect it).
    transform, normalize, out_size, reuse_batch_memory
        See :class:`GeoDataset`.

    Examples
    --------
    >>> import os
    >>> d = os.path.join(DATA, "spacenet4_atlanta")
    >>> ds = SemanticSegmentationSlidingWindowGeoDataset.from_uris(
    ...     os.path.join(d, "sn4_atlanta_pan.tif"),
    ...     label_vector_uri=os.path.join(d, "sn4_atlanta_buildings.geojson"),
    ...     class_config=geoxr.ClassConfig(["background", "building"]),
    ...     default_class_id=1, size=256, stride=256)
    >>> len(ds)
    16
    >>> image, mask = ds[0]
    >>> image.shape, image.dtype, mask.shape, mask.dtype
    (torch.Size([1, 256, 256]), torch.float32, torch.Size([256, 256]), torch.int64)
    """

    def __init__(
        self,
        scene: Scene,
        size: int | tuple[int, int],
        stride: int | tuple[int, int],
        *,
        padding: int | tuple[int, int] | None = None,
        pad_direction: PadDirection = "end",
        within_aoi: bool = True,
        transform: Transform | None = None,
        normalize: BandStats | Literal["stats"] | bool | None = None,
        out_size: int | tuple[int, int] | None = None,
        reuse_batch_memory: bool = True,
    ) -> None:
        windows = sliding_windows(
            scene.grid.shape, size, stride, padding=padding, pad_direction=pad_direction
        )
        if scene.aoi is not None:
            mode: AOIMode = "within" if within_aoi else "intersects"
            windows = filter_windows(windows, scene.grid, scene.aoi, mode=mode)
            if not windows:
                raise WindowError(
                    f"No sliding window of size {size} and stride {stride} "
                    f"{'lies wholly within' if within_aoi else 'intersects'} "
                    f"the AOI of scene {scene.id!r} (AOI bounds {_rounded(scene.aoi.bounds)}, "
                    f"scene bounds {_rounded(scene.grid.bounds)}). Use smaller windows, a "
                    "smaller stride, or within_aoi=False."
                )
        steps, sizes = int_pair(stride, "stride"), int_pair(size, "size")
        self._windows_share_tiles = any(step < n for step, n in zip(steps, sizes, strict=True))
        super().__init__(
            scene,
            windows,
            transform=transform,
            normalize=normalize,
            out_size=out_size,
            reuse_batch_memory=reuse_batch_memory,
        )


class SemanticSegmentationRandomWindowGeoDataset(GeoDataset):
    """``max_windows`` random windows, planned once from a seed (see :func:`~geoxr.random_windows`).

    Parameters
    ----------
    scene : Scene
        The scene.
    size_lims, h_lims, w_lims : (int, int), optional
        Window size limits ``[lo, hi)``: square from ``size_lims``, or free aspect.
    max_windows : int
        Number of windows (the dataset's length).
    out_size : int or (int, int), optional
        Resize samples to this size; needed to batch windows of varying size.
    padding : int or (int, int), optional
        How far windows may reach past the edges; default half the largest size.
    max_sample_attempts : int
        With an AOI, candidate windows drawn per window kept.
    within_aoi : bool
        Keep windows wholly inside the AOI (else: windows that intersect it).
    seed : int, optional
        Seed of the plan; ``None`` draws one. The plan is fixed at construction, so
        every DataLoader worker sees the same windows.
    transform, normalize, reuse_batch_memory
        See :class:`GeoDataset`.

    Examples
    --------
    >>> import os
    >>> d = os.path.join(DATA, "spacenet4_atlanta")
    >>> ds = SemanticSegmentationRandomWindowGeoDataset.from_uris(
    ...     os.path.join(d, "sn4_atlanta_pan.tif"),
    ...     label_vector_uri=os.path.join(d, "sn4_atlanta_buildings.geojson"),
    ...     class_config=geoxr.ClassConfig(["background", "building"]), default_class_id=1,
    ...     size_lims=(100, 300), out_size=128, max_windows=5, seed=1)
    >>> len(ds), ds[0][0].shape
    (5, torch.Size([1, 128, 128]))
    """

    def __init__(
        self,
        scene: Scene,
        *,
        size_lims: tuple[int, int] | None = None,
        h_lims: tuple[int, int] | None = None,
        w_lims: tuple[int, int] | None = None,
        max_windows: int,
        out_size: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] | None = None,
        max_sample_attempts: int = 100,
        within_aoi: bool = True,
        seed: int | None = None,
        transform: Transform | None = None,
        normalize: BandStats | Literal["stats"] | bool | None = None,
        reuse_batch_memory: bool = True,
    ) -> None:
        self.seed = (
            int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else seed
        )
        kw: dict[str, Any] = dict(
            size_lims=size_lims, h_lims=h_lims, w_lims=w_lims, padding=padding
        )
        if scene.aoi is None:
            windows = random_windows(
                scene.grid.shape, max_windows=max_windows, generator=self.seed, **kw
            )
        else:
            candidates = random_windows(
                scene.grid.shape,
                max_windows=max_windows * max_sample_attempts,
                generator=self.seed,
                **kw,
            )
            mode: AOIMode = "within" if within_aoi else "intersects"
            windows = filter_windows(candidates, scene.grid, scene.aoi, mode=mode)[:max_windows]
            if not windows and max_windows:
                raise WindowError(
                    f"No random window of {kw} fits the AOI of scene {scene.id!r} after "
                    f"{len(candidates)} tries. Use smaller windows or within_aoi=False."
                )
            if len(windows) < max_windows:
                warnings.warn(
                    f"Only {len(windows)} of {max_windows} random windows fit the AOI of scene "
                    f"{scene.id!r}.",
                    GeoxrWarning,
                    stacklevel=2,
                )
        super().__init__(
            scene,
            windows,
            transform=transform,
            normalize=normalize,
            out_size=out_size,
            reuse_batch_memory=reuse_batch_memory,
        )
