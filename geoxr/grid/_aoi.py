"""Area-of-interest checks and window filtering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import shapely
from rasterio.crs import CRS

from geoxr.errors import AOIError
from geoxr.grid._window import Grid, Window

__all__ = ["AOIMode", "aoi_geometries", "aoi_union", "filter_windows", "polygonal_part"]

AOIMode = Literal["within", "intersects"]


def polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry: a collection (``make_valid`` leaves some) may hold lines.

    Examples
    --------
    >>> mixed = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(1, 0), (3, 0)])])
    >>> polygonal_part(mixed).geom_type
    'Polygon'
    >>> polygonal_part(shapely.LineString([(0, 0), (1, 0)])).is_empty
    True
    """
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _require_overlap(aoi: shapely.Geometry, grid: Grid, name: str) -> None:
    """Raise :class:`AOIError` if ``aoi`` shares no area with the grid's footprint.

    An AOI that only touches the footprint (shares an edge) holds no pixel of the
    grid either. The footprint, not the bounds, is used: a rotated grid fills only
    part of its bounds.
    """
    footprint = grid.window_polygon(grid.extent)
    if shapely.intersects(aoi, footprint) and not shapely.touches(aoi, footprint):
        return
    raise AOIError(
        f"{name} (bounds {aoi.bounds}) does not overlap the raster (bounds {grid.bounds}, "
        f"both in {grid.crs}), so no window or pixel of it lies in the AOI. Check that the "
        "AOI is in the raster's CRS (reproject it first, e.g. `gdf.to_crs(raster.crs)`; "
        "make_ss_scene's aoi_uri does this) and that it belongs to this raster (wrong file?)."
    )


def aoi_geometries(
    polygons: Any, *, name: str = "AOI", crs: CRS | None = None
) -> tuple[shapely.Geometry, ...]:
    """The geometries of an AOI given as one geometry, a sequence, a GeoSeries or a GeoDataFrame.

    A GeoSeries or GeoDataFrame that declares a CRS is reprojected to ``crs``;
    plain shapely geometries must be in it already.

    Raises
    ------
    AOIError
        If ``polygons`` is not iterable or holds something other than shapely
        geometries (a missing geometry, a string).

    Examples
    --------
    >>> aoi_geometries(shapely.box(0, 0, 1, 1))
    (<POLYGON ((1 0, 1 1, 0 1, 0 0, 1 0))>,)
    """
    if isinstance(polygons, shapely.Geometry):
        return (polygons,)
    if hasattr(polygons, "to_crs"):  # a GeoSeries or GeoDataFrame
        if crs is not None and polygons.crs is not None:
            polygons = polygons.to_crs(crs.to_wkt())
        polygons = polygons.geometry
    try:
        geoms = tuple(polygons)
    except TypeError:
        raise AOIError(
            f"{name} is a {type(polygons).__name__}; give a shapely Polygon, a list of them or "
            "a GeoDataFrame."
        ) from None
    others = sorted({type(g).__name__ for g in geoms if not isinstance(g, shapely.Geometry)})
    if others:
        raise AOIError(
            f"{name} holds {others}, not only shapely geometries. Give Polygons or "
            "MultiPolygons (a GeoDataFrame's missing geometries dropped first)."
        )
    return geoms


def aoi_union(polygons: Any, *, name: str = "AOI", grid: Grid | None = None) -> shapely.Geometry:
    """Validate AOI geometries and return their union (a Polygon or MultiPolygon).

    Parameters
    ----------
    polygons : shapely geometry, iterable of them, GeoSeries or GeoDataFrame
        Polygons or MultiPolygons in the scene's CRS (see :func:`aoi_geometries`).
    name : str
        How to name the input in error messages.
    grid : Grid, optional
        The scene grid; if given, the union must share area with its footprint.

    Raises
    ------
    AOIError
        If there are no polygons, a geometry is not polygonal, the union is empty,
        or it lies wholly outside ``grid`` (touching its edge at most).

    Examples
    --------
    >>> aoi_union([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)]).area
    2.0
    """
    # A collection with polygons (an invalid polygon repaired by make_valid) gives those.
    geoms = [
        part
        if g.geom_type == "GeometryCollection" and not (part := polygonal_part(g)).is_empty
        else g
        for g in aoi_geometries(polygons, name=name, crs=None if grid is None else grid.crs)
    ]
    if not geoms:
        raise AOIError(f"{name} is empty: give at least one Polygon, or aoi_polygons=None.")
    bad = sorted({g.geom_type for g in geoms if g.geom_type not in ("Polygon", "MultiPolygon")})
    if bad:
        raise AOIError(
            f"{name} must hold Polygons or MultiPolygons, but it has {bad}. "
            "Buffer points and lines into polygons first (for example `geom.buffer(distance)`)."
        )
    # Repairs may leave lines (a spike): they hold no area, but would touch windows.
    union = polygonal_part(shapely.union_all(shapely.make_valid(np.asarray(geoms, dtype=object))))
    if union.is_empty or union.area == 0:
        raise AOIError(f"{name} has zero area; give polygons that enclose the area to use.")
    if grid is not None:
        _require_overlap(union, grid, name)
    return union


def filter_windows(
    windows: Sequence[Window], grid: Grid, aoi: shapely.Geometry, *, mode: AOIMode = "within"
) -> list[Window]:
    """Keep the windows that lie within (or intersect) an AOI, in order.

    Parameters
    ----------
    windows : sequence of Window
        Windows on ``grid``.
    grid : Grid
        The scene grid that maps windows to map coordinates.
    aoi : shapely geometry
        Area of interest in ``grid.crs`` (see :func:`aoi_union`).
    mode : {'within', 'intersects'}
        ``'within'`` keeps windows wholly inside the AOI; ``'intersects'`` keeps
        windows that touch its interior.

    Raises
    ------
    AOIError
        If ``mode`` is unknown, or the AOI lies wholly outside ``grid`` (touching
        its edge at most), which would keep no window.

    Examples
    --------
    >>> from affine import Affine
    >>> from rasterio.crs import CRS
    >>> g = Grid(CRS.from_epsg(3857), Affine(1, 0, 0, 0, -1, 10), (10, 10))
    >>> ws = [Window(0, 0, 5, 5), Window(0, 5, 5, 5)]
    >>> filter_windows(ws, g, shapely.box(0, 0, 5, 10))
    [Window(row_off=0, col_off=0, height=5, width=5)]
    """
    if mode not in ("within", "intersects"):
        raise AOIError(f"AOI mode must be 'within' or 'intersects', got {mode!r}.")
    _require_overlap(aoi, grid, "AOI")
    if not windows:
        return []
    boxes = np.array([grid.window_polygon(w) for w in windows], dtype=object)
    shapely.prepare(aoi)
    if mode == "within":
        keep = shapely.covers(aoi, boxes)
    else:
        keep = shapely.intersects(aoi, boxes) & ~shapely.touches(aoi, boxes)
    return [w for w, k in zip(windows, keep, strict=True) if k]
