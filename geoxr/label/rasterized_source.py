"""RasterizedSource: vector polygons as a label raster on a raster's grid, read per window."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import shapely
import xarray as xr
from dask.base import tokenize

from geoxr.errors import ClassConfigError, GeoxrWarning
from geoxr.grid import Grid, Window, polygonal_part
from geoxr.label.rasterize import rasterize_window
from geoxr.read import RasterSource, VectorSource

__all__ = ["RasterizedSource"]


class RasterizedSource(RasterSource):
    """Polygons of a :class:`~geoxr.VectorSource` burned into class ids on a grid.

    Each window is rasterized on its own (only the features that touch it), so
    ``.read(window)`` equals ``rasterio.features.rasterize`` of the same polygons
    on that window, and ``.data`` is lazy with one task per block.

    Parameters
    ----------
    vector_source : VectorSource
        Polygon features; reprojected to ``grid.crs``.
    grid : Grid
        The grid to rasterize on (usually ``raster_source.grid``).
    class_id_column : str, optional
        Feature property holding the class id.
    default_class_id : int, optional
        Class id for features without one (no column, or a missing value).
        Without it, such features are an error.
    background_class_id : int
        Class id of pixels that no feature covers.
    all_touched : bool
        Burn every pixel a polygon touches, not only those whose centre it covers.
    chunk_size : int
        Chunk edge of ``.data`` in pixels.

    Examples
    --------
    >>> import os
    >>> vs = VectorSource(os.path.join(DATA, "spacenet4_atlanta/sn4_atlanta_buildings.geojson"))
    >>> img = geoxr.RasterioSource(os.path.join(DATA, "spacenet4_atlanta/sn4_atlanta_pan.tif"))
    >>> labels = RasterizedSource(vs, grid=img.grid, default_class_id=1)
    >>> labels.read(Window(0, 0, 900, 900)).sum() > 0
    np.True_
    """

    def __init__(
        self,
        vector_source: VectorSource,
        *,
        grid: Grid,
        class_id_column: str | None = "class_id",
        default_class_id: int | None = None,
        background_class_id: int = 0,
        all_touched: bool = False,
        chunk_size: int = 2048,
    ) -> None:
        gdf = vector_source.get_geodataframe(crs=grid.crs)
        polygonal = gdf.geometry.apply(polygonal_part)
        dropped = int(polygonal.is_empty.sum())
        if dropped:
            warnings.warn(
                f"{dropped} of {len(gdf)} features of {vector_source.uri!r} have no polygon and "
                "are not rasterized; buffer points and lines first (BufferTransformer).",
                GeoxrWarning,
                stacklevel=2,
            )
        gdf = gdf.set_geometry(polygonal)[~polygonal.is_empty]
        if class_id_column is not None and class_id_column in gdf.columns:
            ids = pd.to_numeric(gdf[class_id_column], errors="coerce")
        else:
            ids = pd.Series(np.nan, index=gdf.index)
        if default_class_id is not None:
            ids = ids.fillna(default_class_id)
        if ids.isna().any():
            column = gdf[class_id_column] if class_id_column in gdf.columns else None
            columns = [str(c) for c in gdf.columns if c != gdf.geometry.name]
            more = f" and {len(columns) - 8} more" if len(columns) > 8 else ""
            found = (
                f"it has no column {class_id_column!r} (its columns: {columns[:8]}{more})"
                if column is None
                else f"column {class_id_column!r} holds "
                f"{sorted(set(map(str, column[ids.isna()].dropna())))[:5] or 'no value'} there"
            )
            raise ClassConfigError(
                f"{int(ids.isna().sum())} features of {vector_source.uri!r} have no numeric "
                f"class id: {found}. Name the column of class ids with class_id_column=..., "
                "give default_class_id=..., or map class names to ids with "
                "ClassInferenceTransformer."
            )
        fractions = sorted(set(ids[ids != ids.round()].tolist()))
        if fractions:
            raise ClassConfigError(
                f"Features of {vector_source.uri!r} (column {class_id_column!r}) have class "
                f"ids {fractions[:10]} that are not whole numbers; class ids are positions in "
                "the ClassConfig. Map them to those positions first."
            )
        negative = sorted({i for i in [*ids.astype(int).tolist(), background_class_id] if i < 0})
        if negative:
            raise ClassConfigError(
                f"Features of {vector_source.uri!r} (column {class_id_column!r}) or the "
                f"background class have negative class ids {negative}; class ids are "
                "positions in the ClassConfig, 0 or more. Map them to those positions first."
            )
        self.label = vector_source.uri
        self.grid = grid
        self.channels = [0]
        self.nodata = None
        self.raster_transformers = ()
        self.background_class_id = int(background_class_id)
        self.all_touched = all_touched
        self._geoms = gdf.geometry.reset_index(drop=True)
        #: ``(left, bottom, right, top)`` of the polygons in the grid's CRS (``None``: none).
        self.features_bounds: tuple[float, ...] | None = (
            tuple(self._geoms.total_bounds.tolist()) if len(self._geoms) else None
        )
        self._ids = ids.astype(np.int64).to_numpy()
        top = max([self.background_class_id, *self._ids.tolist()])
        self._dtype = np.dtype("uint8") if 0 <= top < 256 else np.dtype("int32")
        self._chunks = (min(chunk_size, grid.height), min(chunk_size, grid.width))

    @property
    def _raw_dtype(self) -> np.dtype:
        return self._dtype

    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        left, bottom, right, top = self.grid.window_bounds(window)
        hits = np.sort(self._geoms.sindex.query(shapely.box(left, bottom, right, top)))
        values = rasterize_window(
            self._geoms.values[hits],
            self._ids[hits],
            self.grid,
            window,
            fill=self.background_class_id,
            all_touched=self.all_touched,
            dtype=self._dtype,
        )[None]
        return np.ma.MaskedArray(values, mask=np.zeros(values.shape, bool))

    def _lazy_data(self) -> xr.DataArray:
        return self._lazy_reads(self._chunks, name="labels", band_numbers=[1])

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            self.label,
            self.grid,
            tokenize(self._ids, [g.wkb for g in self._geoms]),
            self.background_class_id,
            self.all_touched,
        )

    def __repr__(self) -> str:
        return f"RasterizedSource({self.label!r}, features={len(self._ids)}, shape={self.shape})"
