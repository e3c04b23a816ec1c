"""READ: raster sources (lazy DataArrays and windowed chips) and vector sources."""

from geoxr.read._base import RasterSource
from geoxr.read.raster import RasterioSource, tile_aligned_chunks
from geoxr.read.transformers import CastTransformer, RasterTransformer
from geoxr.read.vector import VectorSource
from geoxr.read.xarray_source import XarraySource

__all__ = [
    "CastTransformer",
    "RasterSource",
    "RasterTransformer",
    "RasterioSource",
    "VectorSource",
    "XarraySource",
    "tile_aligned_chunks",
]
