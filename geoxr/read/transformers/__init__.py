"""Raster transformers: the same pixel-wise change on every chip and on the lazy ``.data``."""

from geoxr.read.transformers._base import (
    RasterTransformer,
    apply_transformers,
    checked_transformers,
    fill_masked,
    mask_of,
    output_nodata,
)
from geoxr.read.transformers.raster import (
    CastTransformer,
    MinMaxTransformer,
    NanTransformer,
    ReclassTransformer,
    RGBClassTransformer,
    StatsTransformer,
)

__all__ = [
    "CastTransformer",
    "MinMaxTransformer",
    "NanTransformer",
    "RGBClassTransformer",
    "RasterTransformer",
    "ReclassTransformer",
    "StatsTransformer",
    "apply_transformers",
    "checked_transformers",
    "fill_masked",
    "mask_of",
    "output_nodata",
]
