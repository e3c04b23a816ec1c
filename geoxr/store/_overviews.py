"""Overviews of label rasters, computed block by block while a COG is written.

GDAL's COG driver can build overviews itself, but only after the whole scene is
on disk, in one serial pass that reads it all back (for float scores it took
more time than the prediction). Here each block's overview pixels are computed
in the dask task that computed the block, in parallel with the rest of the
prediction, and written to one temporary GeoTIFF per level; GDAL then takes
them as the COG's own overviews (see :func:`overview_vrt`).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window as RioWindow

__all__ = [
    "aligned_tile",
    "halve",
    "overview_factors",
    "overview_vrt",
    "pyramid",
    "write_remaining_levels",
]


def overview_factors(width: int, height: int, blocksize: int) -> list[int]:
    """Overview levels as GDAL's COG driver makes them: halve until one tile holds the image.

    Examples
    --------
    >>> overview_factors(4000, 4000, 512)
    [2, 4, 8]
    >>> overview_factors(512, 300, 512)
    []
    """
    factors: list[int] = []
    factor = 1
    while max(math.ceil(width / factor), math.ceil(height / factor)) > blocksize:
        factor *= 2
        factors.append(factor)
    return factors


def aligned_tile(chunks: Sequence[Sequence[int]], factor: int, blocksize: int) -> int | None:
    """The tile size at which blocks of ``(y, x)`` ``chunks`` fill whole tiles of a level.

    Block by block, level ``factor`` of a block is a window of the level starting at
    the block's origin divided by ``factor``. It may be written on its own, without
    reading back and rewriting a compressed tile, when it covers whole tiles: every
    block but the last of each axis must span a multiple of ``factor`` times the
    tile. Returns the largest such tile size dividing ``blocksize`` (GeoTIFF tiles
    are multiples of 16 pixels), or ``None`` when there is none.

    Examples
    --------
    >>> aligned_tile(((1024, 1024, 928), (1024, 1024, 928)), 4, 512)
    256
    >>> aligned_tile(((1024, 1024, 928), (1024, 1024, 928)), 128, 512) is None
    True
    >>> aligned_tile(((1000, 1000), (1000, 1000)), 2, 512) is None
    True
    >>> aligned_tile(((300,), (200,)), 64, 512)
    512
    """
    inner = {size for axis in chunks[-2:] for size in axis[:-1]}
    if not inner:  # one block: any tile works
        return blocksize
    span = math.gcd(*inner)
    if span % factor:
        return None
    tile = math.gcd(span // factor, blocksize)
    return tile if tile % 16 == 0 else None


def halve(values: np.ndarray, *, average: bool) -> np.ndarray:
    """The next overview level of ``(..., y, x)`` values: half the size, rounded up.

    ``average``: the mean of each 2 x 2 group, NaN (nodata) left out and a
    group of NaN staying NaN; an odd last row or column is its own group.
    Otherwise the group's first pixel (nearest, for class ids).

    Examples
    --------
    >>> halve(np.array([[1.0, 3.0, 5.0], [np.nan, 5.0, 7.0]]), average=True)
    array([[3., 6.]])
    >>> halve(np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), average=False)
    array([[1, 3],
           [7, 9]])
    """
    if not average:
        return values[..., ::2, ::2]
    height, width = values.shape[-2:]
    if height % 2 or width % 2:
        padding = [(0, 0)] * (values.ndim - 2) + [(0, height % 2), (0, width % 2)]
        values = np.pad(values, padding, constant_values=np.nan)
    groups = values.reshape(*values.shape[:-2], values.shape[-2] // 2, 2, values.shape[-1] // 2, 2)
    missing = np.isnan(groups)
    if not missing.any():
        return groups.mean(axis=(-3, -1), dtype=values.dtype)
    # np.nanmean would warn on all-NaN groups, and silencing warnings is not thread-safe
    sums = np.where(missing, 0, groups).sum(axis=(-3, -1), dtype=values.dtype)
    counts = 4 - missing.sum(axis=(-3, -1))
    return np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)


def pyramid(values: np.ndarray, levels: int, *, average: bool) -> list[np.ndarray]:
    """``levels`` successive :func:`halve` levels of ``values`` (factor 2, 4, ...).

    Examples
    --------
    >>> [level.shape for level in pyramid(np.zeros((3, 1024, 1000)), 3, average=True)]
    [(3, 512, 500), (3, 256, 250), (3, 128, 125)]
    """
    levels_out = []
    for _ in range(levels):
        values = halve(values, average=average)
        levels_out.append(values)
    return levels_out


def write_remaining_levels(
    paths: Sequence[Path], first: int, *, average: bool, window: int = 2048
) -> None:
    """Fill level files ``paths[first:]`` from level ``first - 1``, in one windowed pass.

    ``paths[k]`` is the GeoTIFF of level ``k`` (``paths[0]`` the full resolution),
    already created at its size, as writable files. For levels the blocks could
    not fill (see :func:`aligned_tile`): each window of level ``first - 1`` is read
    once and its :func:`pyramid` written to every remaining level, as a block's
    is. ``window`` bounds the pixels in memory; it is rounded up to a multiple of
    ``2 ** levels``, so that every window halves into whole pixels.
    """
    levels = len(paths) - first
    if levels <= 0:
        return
    window = math.lcm(window, 2**levels)
    with ExitStack() as files:
        src = files.enter_context(rasterio.open(paths[first - 1]))
        dsts = [files.enter_context(rasterio.open(path, "r+")) for path in paths[first:]]
        for row in range(0, src.height, window):
            for col in range(0, src.width, window):
                read = RioWindow(
                    col, row, min(window, src.width - col), min(window, src.height - row)
                )
                values = src.read(window=read)
                for k, (dst, level) in enumerate(
                    zip(dsts, pyramid(values, levels, average=average), strict=True), start=1
                ):
                    origin = (col // 2**k, row // 2**k)
                    dst.write(level, window=RioWindow(*origin, level.shape[-1], level.shape[-2]))


def overview_vrt(path: Path, overviews: Sequence[Path], vrt: Path) -> Path:
    """A VRT of the GeoTIFF ``path`` whose bands have ``overviews`` as their overviews.

    GDAL's COG driver uses a source's overviews as they are (``OVERVIEWS=
    FORCE_USE_EXISTING``) instead of computing its own.
    """
    rasterio.shutil.copy(path, vrt, driver="VRT")
    tree = ET.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        for overview in overviews:
            element = ET.SubElement(band, "Overview")
            ET.SubElement(element, "SourceFilename", relativeToVRT="0").text = str(overview)
            ET.SubElement(element, "SourceBand").text = band.get("band")
    tree.write(vrt)
    return vrt
