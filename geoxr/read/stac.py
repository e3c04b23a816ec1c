"""STAC items as raster sources: assets become bands, items become dates. Needs pystac.

Install with ``pip install geoxr[stac]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.warp import transform_bounds

from geoxr._crs import parse_crs
from geoxr.errors import ConfigError, StacAssetError, WindowError
from geoxr.read._base import RasterSource
from geoxr.read.multi import MultiRasterSource
from geoxr.read.raster import RasterioSource
from geoxr.read.temporal import TemporalMultiRasterSource, parse_times

__all__ = ["stac_item_source", "stac_source"]


def _pystac() -> Any:
    try:
        import pystac
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Reading STAC needs pystac: `pip install geoxr[stac]` (or `pip install pystac`)."
        ) from exc
    return pystac


def _bbox_window(
    source: RasterSource, bbox: Sequence[float], bbox_crs: Any
) -> tuple[int, int, int, int]:
    """The pixel bbox ``(ymin, xmin, ymax, xmax)`` of a map bbox, clipped to the source.

    ``bbox`` is STAC's ``(left, bottom, right, top)``, or its 3D form
    ``(left, bottom, min z, right, top, max z)``.
    """
    crs = source.crs if bbox_crs is None else parse_crs(bbox_crs, what="bbox_crs")
    values = list(bbox) if not isinstance(bbox, str) else []
    if len(values) == 6:  # STAC's 3D bbox: heights dropped
        values = [values[0], values[1], values[3], values[4]]
    numbers_given = len(values) == 4 and all(
        isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v) for v in values
    )
    # west > east crosses the antimeridian (STAC allows it), by less than half the globe
    across = crs.is_geographic and numbers_given and 0 < values[2] + 360 - values[0] <= 180
    if not numbers_given or (values[0] >= values[2] and not across) or values[1] >= values[3]:
        raise WindowError(
            f"bbox {bbox!r} is not (left, bottom, right, top) with left < right (or, in "
            "longitudes, across the antimeridian) and bottom < top, in map coordinates of "
            "bbox_crs (for EPSG:4326: longitude, latitude), as STAC writes it. Give e.g. "
            "bbox=(-99.18, 47.01, -99.15, 47.03)."
        )
    if crs.is_geographic and not -90 <= values[1] < values[3] <= 90:
        raise WindowError(
            f"bbox {tuple(values)} in {crs.to_string()} has latitudes {values[1]} and "
            f"{values[3]}, past the poles. Give (longitude min, latitude min, longitude max, "
            "latitude max), as STAC writes it."
        )
    bounds = transform_bounds(crs, source.crs, *values, densify_pts=21)
    # A bbox the projection cannot take (lat/lon swapped, say) comes back non-finite.
    finite = all(math.isfinite(b) for b in bounds)
    window = source.grid.bounds_to_window(bounds).intersection(source.extent) if finite else None
    if window is None:
        raise WindowError(
            f"bbox {tuple(bbox)} (in {crs.to_string()}) does not overlap {source!r} "
            f"(bounds {source.bounds} in {source.crs.to_string()}). Give the bbox in map "
            "coordinates of bbox_crs (for EPSG:4326: lon, lat order)."
        )
    return (window.ymin, window.xmin, window.ymax, window.xmax)


def stac_item_source(
    item: Any,
    assets: Sequence[str],
    *,
    bbox: Sequence[float] | None = None,
    bbox_crs: Any = None,
    resampling: str = "nearest",
) -> RasterSource:
    """One STAC item as a raster source: the bands of ``assets`` stacked on the first's grid.

    Parameters
    ----------
    item : pystac.Item
        The item; asset hrefs may be local paths or URLs (read with GDAL).
    assets : sequence of str
        Asset keys, in band order. An asset with several bands adds all of them.
    bbox : (left, bottom, right, top), optional
        Crop in map coordinates of ``bbox_crs`` (default the first asset's CRS).
    bbox_crs : CRS-like, optional
        CRS of ``bbox`` (e.g. ``"EPSG:4326"``).
    resampling : str
        GDAL resampling for assets on other grids.
    """
    if isinstance(assets, str):
        raise StacAssetError(
            f"assets={assets!r} is one string; give a list of asset keys, e.g. "
            f"assets=[{assets!r}]."
        )
    if not assets:
        raise StacAssetError("Give at least one asset key.")
    missing = [a for a in assets if a not in item.assets]
    if missing:
        raise StacAssetError(
            f"STAC item {item.id!r} has no asset {missing}; it has {sorted(item.assets)}. "
            "Pick asset keys from those."
        )
    hrefs = [item.assets[a].get_absolute_href() or item.assets[a].href for a in assets]
    first = RasterioSource(hrefs[0])
    if bbox is not None:
        first = RasterioSource(hrefs[0], bbox=_bbox_window(first, bbox, bbox_crs))
    if len(hrefs) == 1:
        return first
    others = [RasterioSource(h) for h in hrefs[1:]]
    return MultiRasterSource([first, *others], resampling=resampling)


def stac_source(
    items: Any,
    assets: Sequence[str],
    *,
    bbox: Sequence[float] | None = None,
    bbox_crs: Any = None,
    resampling: str = "nearest",
) -> RasterSource:
    """A raster source from a STAC Item, or a time series from several items.

    An Item gives ``(band, y, x)`` (assets → bands). An ItemCollection or a list
    of items gives a :class:`~geoxr.TemporalMultiRasterSource` ``(time, band, y, x)``
    with the items' datetimes, sorted in time and aligned to the first item's grid
    (``bbox`` crops that first date; later dates are read on its grid). Nothing is
    read until chips or ``.data`` are computed.

    Examples
    --------
    >>> import os, datetime, pystac
    >>> href = os.path.join(DATA, "naip_timeseries_nd/m_4709963_se_14_1_20090818.tif")
    >>> item = pystac.Item("naip-2009", None, None, datetime.datetime(2009, 8, 18), {})
    >>> _ = item.add_asset("image", pystac.Asset(href))
    >>> stac_source(item, ["image"], bbox=(-99.18, 47.01, -99.15, 47.03), bbox_crs="EPSG:4326").shape
    (447, 458)
    """
    pystac = _pystac()
    if isinstance(items, pystac.Item):
        return stac_item_source(items, assets, bbox=bbox, bbox_crs=bbox_crs, resampling=resampling)
    try:
        item_list: list[Any] = list(items.items if hasattr(items, "items") else items)
    except TypeError:
        raise ConfigError(
            f"stac_source takes a pystac Item, an ItemCollection or a list of Items, got a "
            f"{type(items).__name__}. For a Collection, give collection.get_items() (or an "
            "ItemCollection of them)."
        ) from None
    if not item_list:
        raise ConfigError(
            f"No STAC items given ({items!r}); give a pystac Item, an ItemCollection or a "
            "non-empty list of Items."
        )
    undated = [i.id for i in item_list if i.datetime is None]
    if undated:
        raise ConfigError(
            f"STAC items {undated} have no datetime; a time series needs one per item. "
            "Set `item.datetime`, or pass each item alone for a (band, y, x) source."
        )
    # In UTC, naive: items with and without a time zone sort together.
    times = parse_times([i.datetime for i in item_list])
    dated = sorted(zip(times, item_list, strict=True), key=lambda pair: pair[0])
    # The bbox crops the first date, whose grid the series takes; later dates are read
    # on that grid whole (a crop of their own could stop short of its edge pixels).
    sources = [
        stac_item_source(
            item, assets, bbox=None if n else bbox, bbox_crs=bbox_crs, resampling=resampling
        )
        for n, (_, item) in enumerate(dated)
    ]
    return TemporalMultiRasterSource(
        sources, times=[time for time, _ in dated], resampling=resampling
    )
