"""CRSs given by users: parsed once, with an error that names what was given."""

from __future__ import annotations

from typing import Any

from rasterio.crs import CRS
from rasterio.errors import CRSError

from geoxr.errors import ConfigError

__all__ = ["parse_crs"]


def parse_crs(value: Any, *, what: str) -> CRS:
    """``value`` (an EPSG code, an authority string, WKT, PROJ or a CRS) as a rasterio CRS.

    Raises
    ------
    ConfigError
        If no CRS can be made of ``value``; the message names ``what`` it was for.

    Examples
    --------
    >>> parse_crs(32616, what="crs").to_string()
    'EPSG:32616'
    >>> parse_crs("EPSG:999999", what="bbox_crs")
    Traceback (most recent call last):
    ...
    geoxr.errors.ConfigError: bbox_crs 'EPSG:999999' is not a CRS GDAL/PROJ knows ...
    """
    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{what} {value!r} is not a CRS GDAL/PROJ knows ({exc}). Give an EPSG code "
            "(32616 or 'EPSG:32616'), WKT, a PROJ string or a CRS object."
        ) from exc
