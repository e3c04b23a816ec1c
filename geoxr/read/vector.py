"""VectorSource: any OGR-readable vector file as a GeoDataFrame in the raster's CRS."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import geopandas as gpd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.crs import CRS

from geoxr._crs import parse_crs
from geoxr.errors import ConfigError, GeoxrWarning, NoGeoreferenceError, VectorReadError
from geoxr.read.vector_transformers import VectorTransformer

__all__ = ["VectorSource"]

OnInvalid = Literal["repair", "drop", "raise"]


class VectorSource:
    """Vector features (GeoJSON, Shapefile, GeoPackage, GeoParquet, any OGR format).

    The file is read once, on first use, and reprojected to the CRS asked for.
    GeoJSON with a legacy ``"crs"`` member (projected coordinates) is read in that CRS.

    Parameters
    ----------
    uri : str or path
        File path or GDAL URL. ``.parquet``/``.geoparquet`` is read with pyarrow.
    crs : str, int or CRS, optional
        CRS to assume when the file declares none. A file with a CRS keeps its own,
        but for GeoJSON without a ``"crs"`` member whose coordinates are not degrees
        (read as longitude/latitude, as RFC 7946 says), ``crs`` is the one they are in.
    layer : str or int, optional
        Layer of a multi-layer source (GeoPackage).
    on_invalid : {'repair', 'drop', 'raise'}
        What to do with invalid geometries: repair with ``shapely.make_valid``
        (default), drop them, or raise. Repairs and drops are counted in a warning.
    vector_transformers : sequence of VectorTransformer
        Applied in order after reprojection (so distances are in the target CRS's
        units), e.g. class inference and buffering of points.

    Examples
    --------
    >>> import os
    >>> vs = VectorSource(os.path.join(DATA, "spacenet4_atlanta/sn4_atlanta_buildings.geojson"))
    >>> gdf = vs.get_geodataframe()
    >>> len(gdf), gdf.crs.to_epsg()
    (43, 32616)
    >>> vs.get_geodataframe(crs="EPSG:4326").crs.to_epsg()
    4326
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        crs: Any = None,
        layer: str | int | None = None,
        on_invalid: OnInvalid = "repair",
        vector_transformers: Sequence[VectorTransformer] = (),
    ) -> None:
        if on_invalid not in ("repair", "drop", "raise"):
            raise ConfigError(
                f"on_invalid must be 'repair', 'drop' or 'raise', got {on_invalid!r}."
            )
        self.uri = os.fspath(uri)
        self.crs = (
            None if crs is None else parse_crs(crs, what=f"crs of VectorSource {self.uri!r}")
        )
        self.layer = layer
        self.on_invalid = on_invalid
        self.vector_transformers = tuple(vector_transformers)
        self._gdf: gpd.GeoDataFrame | None = None

    def _read(self) -> gpd.GeoDataFrame:
        try:
            if self.uri.lower().endswith((".parquet", ".geoparquet")):
                gdf = gpd.read_parquet(self.uri)
            else:
                gdf = gpd.read_file(self.uri, layer=self.layer)
        except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
            raise VectorReadError(
                f"Cannot read vector file {self.uri!r}: {exc}. Expected an OGR-readable file "
                "(GeoJSON, Shapefile, GeoPackage, GeoParquet); check the path and layer."
            ) from exc
        if not isinstance(gdf, gpd.GeoDataFrame) or gdf.active_geometry_name is None:
            raise VectorReadError(
                f"Vector file {self.uri!r} has no geometry column (a table without "
                "geometries, such as a CSV). Convert it to a vector format first, for example "
                "with geopandas.points_from_xy or GeoDataFrame.set_geometry."
            )
        if gdf.crs is None:
            if self.crs is None:
                raise NoGeoreferenceError(
                    f"Vector file {self.uri!r} declares no CRS. Pass the CRS its coordinates "
                    "are in, for example VectorSource(uri, crs='EPSG:32616')."
                )
            gdf = gdf.set_crs(self.crs.to_wkt())
        elif _geographic_but_not_degrees(gdf):
            # GeoJSON without a "crs" member is WGS84 (RFC 7946), as GDAL reads it.
            if self.crs is None:
                raise NoGeoreferenceError(
                    f"Vector file {self.uri!r} is read as {gdf.crs.to_string()} (GeoJSON "
                    "without a 'crs' member is longitude/latitude), but its coordinates "
                    f"{tuple(gdf.total_bounds.round(1))} are not degrees. Pass the CRS they "
                    "are in, for example VectorSource(uri, crs='EPSG:32616')."
                )
            gdf = gdf.set_crs(self.crs.to_wkt(), allow_override=True)
        return self._check_geometries(gdf)

    def _check_geometries(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)]
        invalid = ~gdf.geometry.is_valid
        n_invalid = int(invalid.sum())
        if not n_invalid:
            return gdf.reset_index(drop=True)
        if self.on_invalid == "raise":
            reasons = shapely.is_valid_reason(gdf.geometry[invalid].values[:3])
            raise VectorReadError(
                f"Vector file {self.uri!r} has {n_invalid} invalid geometries "
                f"(first: {list(reasons)}). Fix them, or use on_invalid='repair' or 'drop'."
            )
        if self.on_invalid == "drop":
            gdf = gdf[~invalid]
            action = "dropped"
        else:
            gdf = gdf.copy()
            gdf.loc[invalid, gdf.geometry.name] = shapely.make_valid(gdf.geometry[invalid].values)
            action = "repaired with shapely.make_valid"
        warnings.warn(
            f"{n_invalid} invalid geometries in {self.uri!r} were {action}.",
            GeoxrWarning,
            stacklevel=3,
        )
        return gdf.reset_index(drop=True)

    def get_geodataframe(self, crs: Any = None) -> gpd.GeoDataFrame:
        """All features, reprojected to ``crs`` (default: the file's CRS), then transformed."""
        if self._gdf is None:
            self._gdf = self._read()
        gdf = self._gdf
        if crs is not None:
            target = parse_crs(crs, what=f"crs asked of VectorSource {self.uri!r}")
            if target != CRS.from_user_input(gdf.crs):
                gdf = gdf.to_crs(target.to_wkt())
        gdf = gdf.copy()
        for transformer in self.vector_transformers:
            gdf = transformer.transform(gdf)
        return gdf

    def __repr__(self) -> str:
        return f"VectorSource({self.uri!r})"


def _geographic_but_not_degrees(gdf: gpd.GeoDataFrame) -> bool:
    """Whether ``gdf`` is in a geographic CRS with coordinates no longitude/latitude can take."""
    if gdf.crs is None or not CRS.from_user_input(gdf.crs).is_geographic or gdf.empty:
        return False
    left, bottom, right, top = gdf.total_bounds
    return bool(left < -360 or right > 360 or bottom < -90 or top > 90)
