"""Rasterize polygons onto one window of a grid (pure functions)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely

from geoxr._rasterio_features import geometry_mask, rasterize
from geoxr.grid import Grid, Window, polygonal_part

__all__ = ["aoi_window_mask", "rasterize_window"]


def rasterize_window(
    shapes: gpd.GeoSeries | np.ndarray,
    values: npt.ArrayLike,
    grid: Grid,
    window: Window,
    *,
    fill: int = 0,
    all_touched: bool = False,
    dtype: npt.DTypeLike = "uint8",
) -> np.ndarray:
    """Burn ``values`` of ``shapes`` (in ``grid.crs``) into one window; later shapes win.

    Examples
    --------
    >>> from affine import Affine
    >>> from rasterio.crs import CRS
    >>> g = Grid(CRS.from_epsg(3857), Affine(1, 0, 0, 0, -1, 4), (4, 4))
    >>> rasterize_window(np.array([shapely.box(0, 0, 2, 2)]), [3], g, Window(1, 1, 3, 3))
    array([[0, 0, 0],
           [3, 0, 0],
           [3, 0, 0]], dtype=uint8)
    """
    geoms = np.asarray(shapes, dtype=object)
    out = np.full(window.shape, fill, dtype=dtype)
    if len(geoms) == 0:
        return out
    return rasterize(
        zip(geoms, np.asarray(values).tolist(), strict=True),
        out=out,
        transform=grid.window_transform(window),
        all_touched=all_touched,
    )


def aoi_window_mask(aoi: shapely.Geometry, grid: Grid, window: Window) -> np.ndarray:
    """``(y, x)`` booleans, True where a pixel centre lies outside the AOI."""
    box = grid.window_polygon(window)
    if shapely.covers(aoi, box):
        return np.zeros(window.shape, bool)
    # Only the area counts: an AOI edge on the window's edge leaves a line or a point
    # there, which would mark a strip of pixels inside.
    clipped = shapely.intersection(aoi, box)
    if clipped.area == 0:
        return np.ones(window.shape, bool)
    return geometry_mask([polygonal_part(clipped)], window.shape, grid.window_transform(window))
