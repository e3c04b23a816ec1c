"""Vector transformers: class inference, buffering of points and lines, shifts.

They run on a GeoDataFrame already reprojected to the raster's CRS, in the order
given to :class:`~geoxr.VectorSource`, so distances are in the raster's map units.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geoxr.errors import ClassConfigError, GeoxrWarning

__all__ = [
    "BufferTransformer",
    "ClassInferenceTransformer",
    "ShiftTransformer",
    "VectorTransformer",
]


class VectorTransformer(ABC):
    """Base of vector transformers: GeoDataFrame in, GeoDataFrame out."""

    @abstractmethod
    def transform(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Transform the features (in the raster's CRS)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class ClassInferenceTransformer(VectorTransformer):
    """Give every feature a ``class_id`` column; drop (and count) those it cannot classify.

    In order: an explicit class id property; a class name property matched to the
    class config; a ``label`` property matched to it; property filters per class;
    the default class. Unclassified features are dropped with a warning that
    counts them.

    Parameters
    ----------
    class_config : ClassConfig
        The classes.
    class_id_key, class_name_key, label_key : str
        Properties holding an id, a class name or a label text.
    class_id_to_filter : mapping of int to mapping, optional
        ``{class_id: {property: value or [values]}}``: features matching every
        property of a filter get that class.
    default_class_id : int, optional
        Class of features nothing else classifies.

    Raises
    ------
    ClassConfigError
        If a filter or default names no class; in ``transform``, if a feature's
        ``class_id_key`` value is not one of the config's class ids.

    Examples
    --------
    >>> import shapely
    >>> from geoxr.label.class_config import ClassConfig
    >>> gdf = gpd.GeoDataFrame({"label": ["water", "forest", "?"]}, geometry=[shapely.Point(0, 0)] * 3)
    >>> t = ClassInferenceTransformer(ClassConfig(["null", "forest", "water"]))
    >>> import warnings; warnings.simplefilter("ignore")
    >>> t.transform(gdf)["class_id"].tolist()
    [2, 1]
    """

    def __init__(
        self,
        class_config: Any,
        *,
        class_id_key: str = "class_id",
        class_name_key: str = "class_name",
        label_key: str = "label",
        class_id_to_filter: Mapping[int, Mapping[str, Any]] | None = None,
        default_class_id: int | None = None,
    ) -> None:
        if not hasattr(class_config, "ensure_null_class"):  # a ClassConfig (label imports read)
            raise ClassConfigError(
                f"ClassInferenceTransformer takes the class config first, got {class_config!r}. "
                "Give e.g. ClassInferenceTransformer(class_config, default_class_id=1) (Raster "
                "Vision's first argument, default_class_id, is a keyword here)."
            )
        self.class_config = class_config
        self.class_id_key = class_id_key
        self.class_name_key = class_name_key
        self.label_key = label_key
        self.class_id_to_filter = {int(k): dict(v) for k, v in (class_id_to_filter or {}).items()}
        self.default_class_id = default_class_id
        n = len(class_config.ensure_null_class())
        for class_id in [
            *self.class_id_to_filter,
            *([default_class_id] if default_class_id is not None else []),
        ]:
            if not 0 <= class_id < n:
                raise ClassConfigError(
                    f"Class id {class_id} is not in the class config ({n} classes)."
                )

    def _check_ids(self, ids: pd.Series) -> None:
        """Refuse class ids that name no class: they would be burnt into the labels as is."""
        n = len(self.class_config.ensure_null_class())
        given = ids.dropna()
        bad = given[(given != given.round()) | (given < 0) | (given >= n)]
        if len(bad):
            shown = sorted(set(bad.tolist()))[:10]
            raise ClassConfigError(
                f"The {self.class_id_key!r} values of {len(bad)} features are not class ids of "
                f"the class config (0..{n - 1}: {list(self.class_config.ensure_null_class().names)}"
                f"): {shown}. Fix the ids, add the classes they stand for, or classify "
                "by name (class_name_key) instead."
            )

    def _by_name(self, values: pd.Series) -> pd.Series:
        lookup = {name.lower(): i for i, name in enumerate(self.class_config.names)}
        return values.map(lambda v: lookup.get(str(v).lower()) if pd.notna(v) else None).astype(
            float
        )

    def _by_filters(self, gdf: gpd.GeoDataFrame) -> pd.Series:
        ids = pd.Series(np.nan, index=gdf.index)
        for class_id, conditions in self.class_id_to_filter.items():
            match = pd.Series(True, index=gdf.index)
            for prop, wanted in conditions.items():
                if prop not in gdf.columns:
                    match &= False
                    continue
                allowed = wanted if isinstance(wanted, list | tuple | set) else [wanted]
                match &= gdf[prop].isin(allowed)
            ids = ids.where(ids.notna() | ~match, class_id)
        return ids

    def transform(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Add ``class_id``; drop unclassified features with a counting warning."""
        ids = pd.Series(np.nan, index=gdf.index)
        if self.class_id_key in gdf.columns:
            ids = pd.to_numeric(gdf[self.class_id_key], errors="coerce")
            self._check_ids(ids)
        for key in (self.class_name_key, self.label_key):
            if key in gdf.columns:
                ids = ids.fillna(self._by_name(gdf[key]))
        ids = ids.fillna(self._by_filters(gdf))
        if self.default_class_id is not None:
            ids = ids.fillna(self.default_class_id)
        unclassified = int(ids.isna().sum())
        if unclassified:
            warnings.warn(
                f"{unclassified} of {len(gdf)} features could not be classified (no {self.class_id_key!r}, "
                f"no known {self.class_name_key!r}/{self.label_key!r}, no matching filter) and were dropped. "
                "Give default_class_id=... to keep them.",
                GeoxrWarning,
                stacklevel=2,
            )
        out = gdf[ids.notna()].copy()
        out["class_id"] = ids[ids.notna()].astype(np.int64)
        return out.reset_index(drop=True)


class BufferTransformer(VectorTransformer):
    """Buffer points and lines into polygons, by class, in map units.

    Parameters
    ----------
    geom_type : str or sequence of str
        Geometry types to buffer (``"Point"``, ``"LineString"``, ...).
    class_bufs : mapping of int to float, optional
        Buffer distance per ``class_id``.
    default_buf : float
        Distance for other classes (and features without ``class_id``).

    Examples
    --------
    >>> import shapely
    >>> gdf = gpd.GeoDataFrame({"class_id": [1]}, geometry=[shapely.Point(0, 0)])
    >>> float(round(BufferTransformer("Point", default_buf=2.0).transform(gdf).area[0], 1))
    12.5
    """

    def __init__(
        self,
        geom_type: str | Sequence[str],
        *,
        class_bufs: Mapping[int, float] | None = None,
        default_buf: float = 1.0,
    ) -> None:
        self.geom_types = [geom_type] if isinstance(geom_type, str) else list(geom_type)
        self.class_bufs = {int(k): float(v) for k, v in (class_bufs or {}).items()}
        self.default_buf = float(default_buf)

    def transform(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Buffer the chosen geometry types; others pass through."""
        out = gdf.copy()
        chosen = out.geom_type.isin(self.geom_types)
        if "class_id" in out.columns:
            dist = out["class_id"].map(self.class_bufs).fillna(self.default_buf)
        else:
            dist = pd.Series(self.default_buf, index=out.index)
        out.loc[chosen, out.geometry.name] = out.geometry[chosen].buffer(dist[chosen].to_numpy())
        return out


class ShiftTransformer(VectorTransformer):
    """Shift every feature by ``(x_shift, y_shift)`` map units (e.g. to fix a misregistration).

    Examples
    --------
    >>> import shapely
    >>> gdf = gpd.GeoDataFrame(geometry=[shapely.Point(1, 1)])
    >>> ShiftTransformer(2.0, -1.0).transform(gdf).geometry[0].coords[0]
    (3.0, 0.0)
    """

    def __init__(self, x_shift: float = 0.0, y_shift: float = 0.0) -> None:
        self.x_shift = float(x_shift)
        self.y_shift = float(y_shift)

    def transform(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Translate the geometries."""
        out = gdf.copy()
        out[out.geometry.name] = out.geometry.translate(self.x_shift, self.y_shift)
        return out
