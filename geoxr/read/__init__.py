"""READ: raster sources (lazy DataArrays and windowed chips), band statistics, vector sources."""

from geoxr.read._base import RasterSource
from geoxr.read.raster import RasterioSource, tile_aligned_chunks
from geoxr.read.stats import BandStats, compute_band_stats
from geoxr.read.transformers import CastTransformer, RasterTransformer
from geoxr.read.vector import VectorSource
from geoxr.read.xarray_source import XarraySource

__all__ = [
    "BandStats",
    "CastTransformer",
    "RasterSource",
    "RasterTransformer",
    "RasterioSource",
    "VectorSource",
    "XarraySource",
    "compute_band_stats",
    "tile_aligned_chunks",
]
