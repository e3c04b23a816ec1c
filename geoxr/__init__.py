"""geoxr: Raster Vision's workflow for machine learning on geospatial rasters, on the pangeo stack.

Read rasters as lazy, georeferenced xarray DataArrays, sample chips for torch,
train, predict block-wise with dask and write predictions back as geodata.
"""

from importlib import metadata as _metadata

import rioxarray as _rioxarray  # noqa: F401  (registers the .rio accessor)

from geoxr import testing
from geoxr.errors import (
    AOIError,
    BandCountError,
    BundleError,
    ClassConfigError,
    ConfigError,
    CRSMismatchError,
    EmptyBandError,
    GeoxrError,
    GeoxrWarning,
    IncompleteOutputError,
    LabelsError,
    NoGeoreferenceError,
    OutputPathError,
    RasterReadError,
    StacAssetError,
    VectorReadError,
    WindowError,
)
from geoxr.evaluate import SemanticSegmentationEvaluator
from geoxr.grid import ChipGrid, Grid, Window, filter_windows, random_windows, sliding_windows
from geoxr.label import (
    ClassConfig,
    RasterizedSource,
    Scene,
    SemanticSegmentationLabels,
    SemanticSegmentationLabelSource,
    make_ss_scene,
)
from geoxr.learn import (
    TORCH_CPU_MALLOC_ENV,
    ModelConfig,
    SemanticSegmentationLearner,
    SemanticSegmentationLearnerConfig,
    SolverConfig,
    TemporalUNet,
    UNet,
)
from geoxr.predict import predict_scene
from geoxr.read import (
    BandStats,
    BufferTransformer,
    CastTransformer,
    ClassInferenceTransformer,
    MinMaxTransformer,
    MultiRasterSource,
    NanTransformer,
    RasterioSource,
    RasterSource,
    RasterTransformer,
    ReclassTransformer,
    RGBClassTransformer,
    ShiftTransformer,
    StatsTransformer,
    TemporalMultiRasterSource,
    VectorSource,
    VectorTransformer,
    XarraySource,
    compute_band_stats,
    stac_source,
)
from geoxr.sample import (
    GeoDataset,
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
)
from geoxr.store import SemanticSegmentationLabelStore, VectorOutput

try:
    __version__ = _metadata.version("geoxr")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    # Constants
    "TORCH_CPU_MALLOC_ENV",
    # Top-level functions
    "compute_band_stats",
    "filter_windows",
    "make_ss_scene",
    "predict_scene",
    "random_windows",
    "sliding_windows",
    "stac_source",
    # Classes
    "BandStats",
    "BufferTransformer",
    "CastTransformer",
    "ChipGrid",
    "ClassInferenceTransformer",
    "ClassConfig",
    "GeoDataset",
    "Grid",
    "MinMaxTransformer",
    "ModelConfig",
    "MultiRasterSource",
    "NanTransformer",
    "RGBClassTransformer",
    "RasterSource",
    "RasterTransformer",
    "RasterizedSource",
    "RasterioSource",
    "ReclassTransformer",
    "Scene",
    "SemanticSegmentationEvaluator",
    "SemanticSegmentationLabelSource",
    "SemanticSegmentationLabelStore",
    "SemanticSegmentationLabels",
    "SemanticSegmentationLearner",
    "SemanticSegmentationLearnerConfig",
    "SemanticSegmentationRandomWindowGeoDataset",
    "SemanticSegmentationSlidingWindowGeoDataset",
    "ShiftTransformer",
    "SolverConfig",
    "StatsTransformer",
    "TemporalMultiRasterSource",
    "TemporalUNet",
    "UNet",
    "VectorOutput",
    "VectorSource",
    "VectorTransformer",
    "Window",
    "XarraySource",
    # Exceptions and warnings
    "AOIError",
    "BandCountError",
    "BundleError",
    "CRSMismatchError",
    "ClassConfigError",
    "ConfigError",
    "EmptyBandError",
    "GeoxrError",
    "GeoxrWarning",
    "IncompleteOutputError",
    "LabelsError",
    "NoGeoreferenceError",
    "OutputPathError",
    "RasterReadError",
    "StacAssetError",
    "VectorReadError",
    "WindowError",
    # Modules
    "testing",
    "__version__",
]
