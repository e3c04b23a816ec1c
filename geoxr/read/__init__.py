"""READ: raster sources (lazy DataArrays and windowed chips), band statistics, vector sources."""

from geoxr.read._base import RasterSource
from geoxr.read._shared_tiles import SharedTileCache, shared_tile_cache
from geoxr.read.multi import MultiRasterSource
from geoxr.read.raster import RasterioSource, tile_aligned_chunks
from geoxr.read.stac import stac_item_source, stac_source
from geoxr.read.stats import BandStats, compute_band_stats
from geoxr.read.temporal import TemporalMultiRasterSource
from geoxr.read.transformers import (
    CastTransformer,
    MinMaxTransformer,
    NanTransformer,
    RasterTransformer,
    ReclassTransformer,
    RGBClassTransformer,
    StatsTransformer,
)
from geoxr.read.vector import VectorSource
from geoxr.read.vector_transformers import (
    BufferTransformer,
    ClassInferenceTransformer,
    ShiftTransformer,
    VectorTransformer,
)
from geoxr.read.xarray_source import XarraySource

__all__ = [
    "BandStats",
    "BufferTransformer",
    "CastTransformer",
    "ClassInferenceTransformer",
    "MinMaxTransformer",
    "MultiRasterSource",
    "NanTransformer",
    "RGBClassTransformer",
    "RasterSource",
    "RasterTransformer",
    "RasterioSource",
    "ReclassTransformer",
    "SharedTileCache",
    "ShiftTransformer",
    "StatsTransformer",
    "TemporalMultiRasterSource",
    "VectorSource",
    "VectorTransformer",
    "XarraySource",
    "compute_band_stats",
    "shared_tile_cache",
    "stac_item_source",
    "stac_source",
    "tile_aligned_chunks",
]
