"""RasterioSource: any GDAL-readable raster as a lazy DataArray and fast windowed chips."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio.windows
import xarray as xr
from dask.base import tokenize
from rasterio.enums import ColorInterp, Resampling

from geoxr._files import file_identity
from geoxr.errors import ConfigError
from geoxr.grid import Grid, TileLayout, Window
from geoxr.read._base import (
    BBox,
    RasterSource,
    any_band_masked,
    checked_nodata,
    resolve_bbox,
    resolve_channels,
)
from geoxr.read._gdal import dataset, describe, has_own_mask, mosaic_vrt, open_checked
from geoxr.read._shared_tiles import SharedTileCache, TileKey
from geoxr.read.transformers import RasterTransformer, checked_transformers, mask_of

__all__ = ["RasterioSource", "offset_chunks", "tile_aligned_chunks"]


def tile_aligned_chunks(
    block_shape: tuple[int, int], shape: tuple[int, int], *, target: int = 2048
) -> tuple[int, int]:
    """Chunk ``(rows, cols)`` that are whole multiples of the file's internal blocks.

    Aims at about ``target**2`` pixels per chunk. Strips (blocks as wide as the
    raster) give full-width chunks of as many strips as fit the target.

    Examples
    --------
    >>> tile_aligned_chunks((256, 256), (10000, 10000))
    (2048, 2048)
    >>> tile_aligned_chunks((4, 900), (900, 900))
    (900, 900)
    >>> tile_aligned_chunks((1, 791), (718, 791))
    (718, 791)
    """
    bh, bw = block_shape
    height, width = shape
    cw = min(width, max(bw, (target // bw) * bw))
    rows_target = max(1, (target * target) // cw)
    ch = min(height, max(bh, (rows_target // bh) * bh))
    return ch, cw


def offset_chunks(length: int, offset: int, chunk: int) -> tuple[int, ...]:
    """Chunk sizes of an axis that starts ``offset`` pixels into the file, on the file's chunk grid.

    The first chunk is shortened so every later chunk edge falls on a multiple of
    ``chunk`` in file coordinates (and so on the file's tile edges).

    Examples
    --------
    >>> offset_chunks(10, 3, 4)
    (1, 4, 4, 1)
    >>> offset_chunks(8, 0, 4)
    (4, 4)
    """
    first = min(length, chunk - offset % chunk)
    rest = length - first
    return (first,) + (chunk,) * (rest // chunk) + ((rest % chunk,) if rest % chunk else ())


#: Buffer dtypes GDAL reads into (native byte order), casting as it copies.
_GDAL_BUFFER_DTYPES = frozenset(
    np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                          "int64", "float32", "float64")
)  # fmt: skip


def _nodata_of_values(nodata: float | None, dtype: np.dtype) -> float | None:
    """``nodata`` where values of ``dtype`` can hold it, else ``None`` (no value is nodata).

    An integer raster's values compare the same in their own dtype or cast exactly
    into a wider one (``read_into`` a float32 slot): a nodata of 0.5 or -1 for uint8
    values masks none, in either.

    Examples
    --------
    >>> _nodata_of_values(0.5, np.dtype("uint8")), _nodata_of_values(255.0, np.dtype("uint8"))
    (None, 255.0)
    >>> _nodata_of_values(0.5, np.dtype("float32"))
    0.5
    """
    if nodata is None or dtype.kind not in "ui":
        return nodata
    info = np.iinfo(dtype)
    holds = math.isfinite(nodata) and nodata.is_integer() and info.min <= nodata <= info.max
    return nodata if holds else None


class RasterioSource(RasterSource):
    """A raster read through GDAL (rasterio): a local file, a URL, or several files mosaicked.

    Parameters
    ----------
    uris : str or sequence of str
        Path(s) or GDAL URL(s) (``/vsicurl/https://...``). Several files of one CRS
        and resolution are mosaicked lazily through a VRT.
    bbox : Window or (ymin, xmin, ymax, xmax), optional
        Pixel crop of the raster, as in Raster Vision. Default: the whole raster.
    channel_order : sequence of int, optional
        0-based bands to read, in order. Default: all bands but an alpha band that
        masks the others (one GDAL takes as the mask: none where the file declares a
        nodata value), as in Raster Vision.
    nodata : float, optional
        Nodata value overriding the file's. Without either, every value is data
        (0 included); NaN is always nodata for floats.
    raster_transformers : sequence of RasterTransformer
        Applied to every chip and, block by block, to ``.data``.
    target_grid : Grid, optional
        Read on this grid instead of the file's own: each window is warped
        through GDAL, for example to align a label raster in another CRS to the
        image grid. Pixels the file does not cover are masked.
    file_bbox : Window or (ymin, xmin, ymax, xmax), optional
        With ``target_grid``: the pixel crop of the file(s) to warp. What lies
        outside it is masked, as if the file held only this crop (a cropped source
        aligned onto another grid keeps its crop this way). Default: all of it.
    resampling : str
        GDAL resampling of warped reads (``'nearest'``, ``'bilinear'``, ``'cubic'``...).
    chunk_size : int
        Target chunk edge of ``.data`` in pixels; chunks are whole multiples of
        the file's internal tiles.

    Attributes
    ----------
    uncropped_grid : Grid
        The grid ``bbox`` crops: the file's (the mosaic's), or ``target_grid``.
    tile_cache : SharedTileCache or None
        Where set, ``read`` takes the file's decoded tiles from this cache, shared
        with the processes forked after it was made, and decodes only the tiles it
        does not hold. Datasets set it in their DataLoader workers when there are
        two or more and windows share tiles. Only a GeoTIFF read directly (see
        :attr:`tile_layout`) uses it.

    Examples
    --------
    >>> import os
    >>> src = RasterioSource(os.path.join(DATA, "rasterio_rgb_byte/RGB.byte.tif"))
    >>> src.shape, src.num_channels, src.crs.to_epsg(), src.nodata
    ((718, 791), 3, 32618, 0.0)
    >>> chip = src.read(Window(700, 780, 32, 32))
    >>> chip.shape, bool(chip.mask[:, -1, -1].all())
    ((3, 32, 32), True)
    >>> src.data.chunks is not None
    True
    """

    def __init__(
        self,
        uris: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        bbox: BBox | None = None,
        channel_order: Sequence[int] | None = None,
        nodata: float | None = None,
        raster_transformers: Sequence[RasterTransformer] = (),
        target_grid: Grid | None = None,
        file_bbox: BBox | None = None,
        resampling: str = "nearest",
        chunk_size: int = 2048,
    ) -> None:
        paths = (
            [os.fspath(uris)]
            if isinstance(uris, str | os.PathLike)
            else [os.fspath(u) for u in uris]
        )
        if not paths:
            raise ConfigError(
                f"RasterioSource needs at least one uri, got {uris!r}. Give a file path or "
                "URL, or a list of them to mosaic."
            )
        self.uris = paths
        self.label = (
            paths[0] if len(paths) == 1 else f"mosaic of {len(paths)} files ({paths[0]}, ...)"
        )
        # Local files by absolute path: a worker in another directory opens the same file,
        # and the same file given two ways is the same work (dask token).
        local = [os.path.abspath(p) if file_identity(p) is not None else p for p in paths]
        self._local_uris = local
        declared = checked_nodata(nodata, label=self.label)  # NaN: none, whatever the file says
        # The files' nodata in the mosaic: the one declared, if it is a value.
        in_files = None if declared is None or math.isnan(declared) else declared
        self._path = local[0] if len(local) == 1 else mosaic_vrt(local, nodata=in_files)
        with open_checked(self._path, label=self.label) as ds:
            file_grid = describe(ds, label=self.label)
            count, dtype = ds.count, np.dtype(ds.dtypes[0])
            file_nodata = ds.nodata
            block_shape = ds.block_shapes[0]
            self._file_shape = (ds.height, ds.width)
            tiled_file = ds.driver == "GTiff"  # a VRT's blocks are not its files' tiles
            self._dataset_mask = has_own_mask(ds)
            # An alpha band that masks the others (their mask is the dataset's: read_masks)
            # is no channel of its own. With a nodata value GDAL masks by that instead: the
            # alpha band stays a channel, so nothing it marks is lost.
            colours = [b for b, c in enumerate(ds.colorinterp) if c != ColorInterp.alpha]
            colours = colours if self._dataset_mask else []
        file_crop = None
        if file_bbox is not None:
            if target_grid is None:
                raise ConfigError(
                    f"file_bbox={file_bbox!r} for {self.label!r} crops the file before it is "
                    "warped onto target_grid, but no target_grid was given. Use bbox=... to "
                    "crop the raster itself."
                )
            crop = resolve_bbox(file_bbox, file_grid, label=self.label)
            if crop != file_grid.extent:
                file_crop = crop
                self._path = mosaic_vrt(local, crop=crop, nodata=in_files)
        self._file_grid = file_grid
        if Resampling.__members__.get(resampling) is None:
            raise ConfigError(
                f"Unknown resampling {resampling!r}; use one of {sorted(Resampling.__members__)}."
            )
        # Warped reads mask what the file does not cover.
        self._dataset_mask |= target_grid is not None
        self.resampling = resampling
        self.chunk_size = chunk_size
        self.target_grid = target_grid
        full = target_grid if target_grid is not None else file_grid
        self.uncropped_grid = full
        self._offset = resolve_bbox(bbox, full, label=self.label)
        # The crops the user asked for, which reading on another grid keeps (on_grid): of
        # the file(s), and of the grid a warped source is read on.
        cropped = self._offset != full.extent
        self._file_bbox = self._offset if target_grid is None and cropped else file_crop
        self._grid_bbox = self._offset if target_grid is not None and cropped else None
        self.grid = full.crop(self._offset)
        self.channels = (
            resolve_channels(channel_order, count, label=self.label)
            if channel_order is not None or not colours
            else colours
        )
        self.nodata = declared if declared is not None else file_nodata
        self._dtype = dtype
        self.raster_transformers = checked_transformers(
            raster_transformers, len(self.channels), label=self.label
        )
        # Sized on the whole file (or target grid), so a bbox's chunks meet on its tile edges.
        ch, cw = tile_aligned_chunks(block_shape, full.shape, target=chunk_size)
        row_off, col_off = (
            (0, 0) if target_grid is not None else (self._offset.row_off, self._offset.col_off)
        )
        self._chunks = (
            offset_chunks(self.grid.height, row_off, ch),
            offset_chunks(self.grid.width, col_off, cw),
        )
        # Warped reads and VRTs (mosaics too) decode their files' tiles, not the VRT's blocks.
        direct = tiled_file and target_grid is None and len(paths) == 1
        # Reads of the file itself, not of a VRT (a mosaic, a crop made to warp, a warp).
        self._reads_file = target_grid is None and self._path == local[0]
        self._tiles = TileLayout(block_shape, (row_off, col_off)) if direct else None
        # What GDAL decodes for one tile: every band of the file (pixel interleaving).
        self._tile_bytes = math.prod(block_shape) * count * dtype.itemsize
        self.tile_cache: SharedTileCache | None = None
        # The cache's key for this source: its dask token, which changes with the file.
        self._source_id = int(tokenize(self)[:15], 16)

    @property
    def tile_layout(self) -> TileLayout | None:
        """A GeoTIFF's internal tiles or strips (``None`` for other formats, warped reads, mosaics)."""
        return self._tiles

    @property
    def decoded_tile_bytes(self) -> int:
        """Bytes GDAL decodes for one internal tile or strip, at most: all of the file's bands.

        Exact for pixel-interleaved files (GDAL decodes every band of a tile), high for
        band-interleaved ones (only the bands read). It describes the file's tiles
        where :attr:`tile_layout` is not ``None``; elsewhere, the blocks GDAL reports.
        """
        return self._tile_bytes

    @property
    def _raw_dtype(self) -> np.dtype:
        return self._dtype

    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        values, invalid = self._read_values(window)
        return np.ma.MaskedArray(values, mask=np.ma.nomask if invalid is None else invalid)

    def _read_inside_into(self, window: Window, out: np.ndarray) -> np.ndarray | None:
        # Straight into out, GDAL casting as it copies the file's values (a float32 slot of
        # a batch), where out's dtype holds them exactly. Not through a VRT (a mosaic, a
        # warp): its fill and resampling would take out's dtype, not the file's.
        raw, dtype = self._dtype, out.dtype
        exact = dtype == raw or (raw.kind in "ui" and np.can_cast(raw, dtype))
        if self.raster_transformers or not (
            self._reads_file and dtype in _GDAL_BUFFER_DTYPES and exact
        ):
            return super()._read_inside_into(window, out)
        _, invalid = self._read_values(window, out)
        return None if invalid is None else any_band_masked(invalid)

    def _read_values(
        self, window: Window, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``window`` (inside the extent) as GDAL reads it, and its per-band invalid mask.

        Into ``out`` where given (a read of the file itself, cast exactly: see
        :meth:`_read_inside_into`). The mask is ``None`` where every value is data
        (integers, no nodata they can hold, no mask of the file's own).
        """
        ds = dataset(self._path, self.target_grid, self.resampling, self.nodata)
        in_file = window.shift(self._offset.row_off, self._offset.col_off)
        file_window = in_file.to_rasterio()
        indexes = [c + 1 for c in self.channels]
        if self.tile_cache is not None and self._tiles is not None:
            values = np.empty((len(indexes), *window.shape), self._dtype) if out is None else out
            self._read_tiles(ds, indexes, in_file, self.tile_cache, values)
        else:
            values = ds.read(indexes, window=file_window, out=out)
        # The dtype the values had in the file (or the VRT), whatever out's is.
        read_dtype = values.dtype if out is None else self._dtype
        nodata = _nodata_of_values(self.nodata, read_dtype)
        if nodata is None and read_dtype.kind != "f" and not self._dataset_mask:
            return values, None
        invalid = mask_of(values, nodata)
        if self._dataset_mask:
            invalid |= ds.read_masks(indexes, window=file_window) == 0
        return values, invalid

    def _read_tiles(
        self, ds: Any, indexes: list[int], window: Window, cache: SharedTileCache, out: np.ndarray
    ) -> None:
        """Read ``window`` (in file pixels) into ``out`` tile by tile, through ``cache``."""
        assert self._tiles is not None
        (th, tw), (height, width) = self._tiles.shape, self._file_shape
        y0, x0, y1, x1 = window.ymin, window.xmin, window.ymax, window.xmax
        for row in range(y0 // th, (y1 - 1) // th + 1):
            ty0, ty1 = row * th, min(height, (row + 1) * th)
            ya, yb = max(y0, ty0), min(y1, ty1)  # the rows read from this tile
            for col in range(x0 // tw, (x1 - 1) // tw + 1):
                tx0, tx1 = col * tw, min(width, (col + 1) * tw)
                xa, xb = max(x0, tx0), min(x1, tx1)

                def decode(into: np.ndarray, box: tuple[int, ...] = (tx0, ty0, tx1, ty1)) -> None:
                    col0, row0, col1, row1 = box  # the tile's pixels in the file
                    window = rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)
                    ds.read(indexes, window=window, out=into)

                cache.copy_tile(
                    TileKey(self._source_id, row * -(-width // tw) + col),
                    (len(indexes), ty1 - ty0, tx1 - tx0),
                    self._dtype,
                    (slice(None), slice(ya - ty0, yb - ty0), slice(xa - tx0, xb - tx0)),
                    out[:, ya - y0 : yb - y0, xa - x0 : xb - x0],
                    decode,
                )

    def __getstate__(self) -> dict[str, object]:
        # The cache is shared by fork only: a copy made by pickling reads without it.
        return {**self.__dict__, "tile_cache": None}

    def _lazy_data(self) -> xr.DataArray:
        stem = os.path.splitext(os.path.basename(self.uris[0]))[0]
        return self._lazy_reads(
            self._chunks, name=stem, band_numbers=[c + 1 for c in self.channels]
        )

    def __dask_tokenize__(self) -> object:
        # A file replaced or changed on disk is new work: its inode, size and
        # modification time are part of the token.
        identities = [(u, file_identity(u)) for u in self._local_uris]
        versions = [(u, i) for u, i in identities if i is not None]
        return (
            type(self).__name__,
            self._path,
            versions,
            self.target_grid,
            self.resampling,
            self._offset,
            self.channels,
            self.nodata,
            [repr(t) for t in self.raster_transformers],
        )

    def on_grid(self, grid: Grid, *, resampling: str | None = None) -> RasterioSource:
        """The same file(s), bands, nodata, crop and transformers, read on ``grid``.

        A ``grid`` made of whole pixels of this source's own grid, inside its crop,
        is read as a crop (no resampling); any other is warped through GDAL, and
        what lies outside this source's crop is masked. A crop made here (to align
        it) is not kept: on yet another grid the source shows what it showed before.
        """
        kept: dict[str, Any] = {
            "channel_order": self.channels,
            "nodata": self.nodata,
            "raster_transformers": self.raster_transformers,
            "resampling": resampling or self.resampling,
            "chunk_size": self.chunk_size,
        }
        own = self.target_grid or self._file_grid
        shown = (self._grid_bbox if self.target_grid else self._file_bbox) or own.extent
        window = own.window_of(grid)
        if window is not None and shown.contains(window):
            warped = self.target_grid is not None
            view = RasterioSource(
                self._local_uris,
                bbox=window,
                target_grid=self.target_grid,
                file_bbox=self._file_bbox if warped else None,
                **kept,
            )
            view._file_bbox, view._grid_bbox = self._file_bbox, self._grid_bbox
            return view
        if self._grid_bbox is not None:
            raise ConfigError(
                f"{self!r} is a crop of a grid it is warped onto; it cannot be warped onto "
                f"another grid {grid} with that crop kept. Crop the file itself instead "
                "(file_bbox=... in pixels of the file)."
            )
        return RasterioSource(
            self._local_uris, target_grid=grid, file_bbox=self._file_bbox, **kept
        )

    def __repr__(self) -> str:
        return (
            f"RasterioSource({self.label!r}, shape={self.shape}, bands={self.num_channels}, "
            f"crs={self.crs.to_string()}, nodata={self.nodata})"
        )
