"""Helpers shared by the benchmark scripts for their generated, cached rasters."""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.crs
import rasterio.errors


def is_cached_raster(
    path: Path, *, size: int, count: int, tile: int, crs: str, cog: bool = False
) -> bool:
    """Whether ``path`` is a finished generated raster: shape, bands, tiles, codec, CRS (COG)."""
    if not path.is_file():
        return False
    try:
        with rasterio.open(path) as ds:
            return (
                ds.shape == (size, size)
                and ds.count == count
                and ds.block_shapes[0] == (tile, tile)
                and str(ds.compression).lower().endswith("deflate")
                and ds.crs == rasterio.crs.CRS.from_user_input(crs)
                and (not cog or ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG")
            )
    except rasterio.errors.RasterioIOError:
        return False
