"""GDAL access for raster sources: per-thread open handles and lazy VRT mosaics.

Sources keep only the *recipe* to open a dataset (a path, URL or VRT XML string),
never an open handle, so they pickle cleanly to dask and DataLoader workers.
Each process and thread opens its own handle on first use and keeps it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from xml.sax.saxutils import escape

import rasterio
from rasterio.dtypes import dtype_rev, typename_fwd
from rasterio.enums import MaskFlags, Resampling
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT

from geoxr._files import file_identity
from geoxr.errors import CRSMismatchError, NoGeoreferenceError, RasterReadError
from geoxr.grid import Grid, Window

__all__ = [
    "cap_block_cache",
    "dataset",
    "describe",
    "has_own_mask",
    "mosaic_vrt",
    "open_checked",
    "read_once_block_cache",
    "tile_decode_cache_bytes",
]

_local = threading.local()

#: GDAL's block cache where each tile is read once (prediction blocks, windows that
#: share no tiles) or written once (label COGs): GDAL's default (5% of RAM) would only
#: grow RSS with the scene, up to that 5%, and fault in fresh pages for every tile it keeps.
READ_ONCE_CACHE_BYTES = 64 * 2**20
#: GDAL's block cache, at least, in a process whose tiles all come from the shared tile
#: cache (DataLoader workers): GDAL decodes a tile that cache misses, and nothing reads
#: it from GDAL's cache again; more room would only fault in pages (see
#: :func:`tile_decode_cache_bytes`).
TILE_DECODE_CACHE_BYTES = 8 * 2**20


def cap_block_cache(limit: int = READ_ONCE_CACHE_BYTES) -> int | None:
    """Cap this process's GDAL block cache at ``limit`` bytes, unless ``GDAL_CACHEMAX`` is set.

    Returns the cache size it replaced, or ``None`` where it set nothing or GDAL
    did not tell the size.
    """
    if "GDAL_CACHEMAX" in os.environ:
        return None
    current = get_gdal_config("GDAL_CACHEMAX")
    if current is None or int(current) > limit:
        set_gdal_config("GDAL_CACHEMAX", limit)
        return None if current is None else int(current)
    return None


def tile_decode_cache_bytes(tile_bytes: Sequence[int]) -> int:
    """GDAL's block cache for a process that reads tiles of these sizes through the shared cache.

    :data:`TILE_DECODE_CACHE_BYTES`, or room for two of the largest tiles if more:
    GDAL keeps the other bands of a pixel-interleaved tile it decoded only if all of
    them fit in its cache, and image and label tiles are decoded in turn. (A tile
    larger than a quarter of the shared cache is never kept there: GDAL's cache is
    then its only cache, two tiles deep.)

    Examples
    --------
    >>> tile_decode_cache_bytes([256 * 256 * 3]) == TILE_DECODE_CACHE_BYTES
    True
    >>> tile_decode_cache_bytes([4096 * 4096 * 4]) // 2**20
    128
    >>> tile_decode_cache_bytes([]) == TILE_DECODE_CACHE_BYTES
    True
    """
    return max([TILE_DECODE_CACHE_BYTES, *(2 * b for b in tile_bytes)])


_capped_lock = threading.Lock()
_capped_users = 0
_capped_from: int | None = None


@contextmanager
def read_once_block_cache() -> Iterator[None]:
    """:func:`cap_block_cache` while inside; the size it had comes back after the last user.

    For read-once work in a process that does other work too (prediction blocks on
    dask's threaded scheduler run in the user's own process): threads inside at
    the same time share the cap, and once none is, GDAL's cache has its earlier
    size again, for whatever the process reads next.

    Examples
    --------
    >>> before = get_gdal_config("GDAL_CACHEMAX")
    >>> with read_once_block_cache():
    ...     inside = get_gdal_config("GDAL_CACHEMAX")
    >>> "GDAL_CACHEMAX" in os.environ or inside <= READ_ONCE_CACHE_BYTES
    True
    >>> get_gdal_config("GDAL_CACHEMAX") == before
    True
    """
    global _capped_users, _capped_from
    with _capped_lock:
        if _capped_users == 0:
            _capped_from = cap_block_cache()
        _capped_users += 1
    try:
        yield
    finally:
        with _capped_lock:
            _capped_users -= 1
            if _capped_users == 0 and _capped_from is not None:
                # Unless someone set another size meanwhile: theirs stays.
                if get_gdal_config("GDAL_CACHEMAX") == READ_ONCE_CACHE_BYTES:
                    set_gdal_config("GDAL_CACHEMAX", _capped_from)
                _capped_from = None


def has_own_mask(ds: rasterio.DatasetReader) -> bool:
    """Whether a band of ``ds`` has a mask of its own (an internal mask or a .msk file)."""
    return any(MaskFlags.per_dataset in flags for flags in ds.mask_flag_enums)


def open_checked(path: str, *, label: str | None = None) -> rasterio.DatasetReader:
    """Open a raster with GDAL, turning failures into a geoxr error that names it.

    The error is raised with no rasterio error chained to it (its text is in the
    message): rasterio's GDAL errors do not unpickle, so on a dask.distributed
    cluster the error would reach the client as a plain ``Exception``.
    """
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        reason = str(exc)
    raise RasterReadError(
        f"Cannot open raster {label or path!r}: {reason}. Expected a GDAL-readable file or "
        "URL (local path, /vsicurl/https://..., /vsis3/...). Check that the path exists "
        "and is a raster."
    )


def dataset(
    path: str,
    target_grid: Grid | None = None,
    resampling: str = "nearest",
    nodata: float | None = None,
) -> Any:
    """This thread's open handle on ``path`` (warped onto ``target_grid`` if given).

    A warped read leaves out ``nodata`` (default: the file's own) when it resamples,
    and writes it where the file has no data. A local file replaced or rewritten since
    (another inode, size or modification time: a label store saved again) is opened
    afresh; the stale handle is closed.
    """
    # Unwarped reads mask nodata themselves: one handle whatever nodata they declare.
    key = (os.getpid(), path, target_grid, resampling, None if target_grid is None else nodata)
    handles = getattr(_local, "handles", None)
    if handles is None or handles.get("pid") != os.getpid():
        handles = _local.handles = {"pid": os.getpid()}
    identity = file_identity(path)
    identity_and_handle = handles.get(key)
    if identity_and_handle is not None and identity_and_handle[0] != identity:
        stale = identity_and_handle[1]
        stale.close()
        if isinstance(stale, WarpedVRT):
            stale.src_dataset.close()
        identity_and_handle = None
    if identity_and_handle is None:
        handle = open_checked(path)
        if target_grid is not None:
            # Without a nodata value or alpha, a warped read cannot tell uncovered pixels apart.
            flags = handle.mask_flag_enums
            has_alpha = any(MaskFlags.alpha in f for f in flags)
            # A nodata the user declared (the file may have none) is left out of resampling,
            # unless the file has a mask of its own (alpha, an internal mask): GDAL's warper
            # would then ignore that mask. Reads mask the declared value after warping.
            own_mask = has_own_mask(handle)
            src_nodata = None if own_mask else handle.nodata if nodata is None else nodata
            if src_nodata is not None and math.isnan(src_nodata) and handle.dtypes[0][0] != "f":
                src_nodata = None  # "none" on integers: an alpha band marks the coverage
            handle = WarpedVRT(
                handle,
                crs=target_grid.crs,
                transform=target_grid.transform,
                width=target_grid.width,
                height=target_grid.height,
                resampling=Resampling[resampling],
                src_nodata=src_nodata,
                nodata=src_nodata,
                add_alpha=src_nodata is None and not has_alpha,
            )
        identity_and_handle = handles[key] = (identity, handle)
    return identity_and_handle[1]


def describe(ds: rasterio.DatasetReader, *, label: str) -> Grid:
    """The grid of an open dataset; raises if it has no georeference."""
    if ds.crs is None or ds.transform.is_identity:
        raise NoGeoreferenceError(
            f"Raster {label!r} has no {'CRS' if ds.crs is None else 'geotransform'}. "
            "Expected a georeferenced raster; assign one with "
            "`rio edit-info --crs EPSG:... --transform ...` or use XarraySource with "
            "`data.rio.write_crs(...)`."
        )
    if ds.transform.b or ds.transform.d:
        raise NoGeoreferenceError(
            f"Raster {label!r} has a rotated or sheared geotransform {tuple(ds.transform)[:6]}; "
            "geoxr works on north-up grids (x and y coordinates along the columns and rows). "
            "Warp it onto one first, e.g. `gdalwarp in.tif out.tif` (or a VRT: "
            "`gdalwarp -of VRT in.tif out.vrt`)."
        )
    return Grid(ds.crs, ds.transform, (ds.height, ds.width))


def mosaic_vrt(
    paths: Sequence[str], *, crop: Window | None = None, nodata: float | None = None
) -> str:
    """A VRT XML string that mosaics rasters of one CRS, resolution and band count.

    Later files win where files overlap; each file's nodata is honoured so it does
    not overwrite valid pixels of earlier files.

    Parameters
    ----------
    paths : sequence of str
        The rasters (one is fine: a crop of it).
    crop : Window, optional
        Only this pixel window of the mosaic: the VRT is that window, and nothing of
        the files outside it shows through (a warped read masks it).
    nodata : float, optional
        The files' nodata value (in place of their own), the VRT's, and what it holds
        where no file (or no crop) covers it; default: the first file's nodata.
        Without either, or where files have masks of their own, a mask band marks it.
    """
    infos, masked = [], False
    colours: list[str] = []
    for path in paths:
        with open_checked(path) as ds:
            # A declared nodata is the files' own: what it marks shows nothing through.
            file_nodata = ds.nodata if nodata is None else nodata
            infos.append((path, describe(ds, label=path), ds.count, ds.dtypes[0], file_nodata))
            masked |= has_own_mask(ds)
            colours = colours or [c.name.capitalize() for c in ds.colorinterp]  # the first's
    first_path, first, count, dtype, nodata_of_first = infos[0]
    xres, yres = first.resolution
    expected = (first.crs, first.resolution, count, dtype)
    for path, grid, n, other_dtype, _ in infos[1:]:
        # Whole pixels apart: the mosaic places each file at a pixel offset.
        shift = (
            (grid.transform.c - first.transform.c) / xres,
            (grid.transform.f - first.transform.f) / yres,
        )
        off_pixels = any(abs(d - round(d)) > 1e-6 for d in shift)
        got = (grid.crs, grid.resolution, n, other_dtype)
        if got != expected or off_pixels:
            apart = f", not a whole number of pixels apart: {shift}" if off_pixels else ""
            raise CRSMismatchError(
                f"Cannot mosaic {path!r} with {first_path!r}: expected the same CRS, "
                "resolution, band count and data type on the same pixel grid "
                f"({', '.join(map(str, expected))}), got ({', '.join(map(str, got))}){apart}. "
                "Use MultiRasterSource to combine rasters on different grids, or convert the "
                "data types first."
            )
    lefts, bottoms, rights, tops = zip(*(g.bounds for _, g, *_ in infos), strict=True)
    left, top = min(lefts), max(tops)
    height, width = round((top - min(bottoms)) / yres), round((max(rights) - left) / xres)
    if crop is not None:
        left, top = left + crop.xmin * xres, top - crop.ymin * yres
        height, width = crop.shape
    nodata = nodata if nodata is not None else nodata_of_first
    gdal_type = typename_fwd[dtype_rev[dtype]]

    def source(kind: str, path: str, grid: Grid, band: str, extra: str = "") -> str:
        """One file placed in the mosaic: ``band`` of ``path`` at its offset."""
        xoff = round((grid.transform.c - left) / xres)
        yoff = round((top - grid.transform.f) / yres)
        size = f'xSize="{grid.width}" ySize="{grid.height}"'
        return (
            f'<{kind}><SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
            f'<SourceBand>{band}</SourceBand><SrcRect xOff="0" yOff="0" {size}/>'
            f'<DstRect xOff="{xoff}" yOff="{yoff}" {size}/>{extra}</{kind}>'
        )

    bands = []
    for band in range(1, count + 1):
        sources = "".join(
            source(
                "ComplexSource",
                path,
                grid,
                str(band),
                f"<NODATA>{src_nodata}</NODATA>" if src_nodata is not None else "",
            )
            for path, grid, *_, src_nodata in infos
        )
        nd = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
        colour = f"<ColorInterp>{colours[band - 1]}</ColorInterp>"  # an alpha band stays one
        bands.append(
            f'<VRTRasterBand dataType="{gdal_type}" band="{band}">{colour}{nd}{sources}'
            "</VRTRasterBand>"
        )
    if nodata is None or masked:
        # A dataset mask made of each file's mask marks the gaps, where no NoDataValue
        # does, and keeps what the files' own masks (alpha, internal masks) mark.
        masks = "".join(source("SimpleSource", path, grid, "mask,1") for path, grid, *_ in infos)
        bands.append(
            f'<MaskBand><VRTRasterBand dataType="Byte">{masks}</VRTRasterBand></MaskBand>'
        )
    geotransform = ", ".join(repr(v) for v in (left, xres, 0.0, top, 0.0, -yres))
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(first.crs.to_wkt())}</SRS><GeoTransform>{geotransform}</GeoTransform>"
        f"{''.join(bands)}</VRTDataset>"
    )
