"""LEARN: models, the training loop, metrics and model bundles (pure torch)."""

from geoxr.learn.bundle import read_bundle, read_bundle_config, write_bundle
from geoxr.learn.config import (
    SCHEMA_VERSION,
    ModelConfig,
    SemanticSegmentationLearnerConfig,
    SolverConfig,
)
from geoxr.learn.cpu_malloc import TORCH_CPU_MALLOC_ENV
from geoxr.learn.learner import SemanticSegmentationLearner, build_model
from geoxr.learn.metrics import confusion_matrix, segmentation_metrics
from geoxr.learn.models import TemporalUNet, UNet

__all__ = [
    "SCHEMA_VERSION",
    "TORCH_CPU_MALLOC_ENV",
    "ModelConfig",
    "SemanticSegmentationLearner",
    "SemanticSegmentationLearnerConfig",
    "SolverConfig",
    "TemporalUNet",
    "UNet",
    "build_model",
    "confusion_matrix",
    "read_bundle",
    "read_bundle_config",
    "segmentation_metrics",
    "write_bundle",
]
