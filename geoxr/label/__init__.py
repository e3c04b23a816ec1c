"""LABEL: class configs, label sources, rasterization and scenes."""

from geoxr.label.blend import ScoreAccumulator, chip_weights
from geoxr.label.class_config import ClassConfig
from geoxr.label.labels import SemanticSegmentationLabels, class_ids_from_scores
from geoxr.label.rasterize import aoi_window_mask, rasterize_window
from geoxr.label.rasterized_source import RasterizedSource
from geoxr.label.scene import Scene, make_ss_scene
from geoxr.label.sources import SemanticSegmentationLabelSource

__all__ = [
    "ClassConfig",
    "RasterizedSource",
    "Scene",
    "ScoreAccumulator",
    "SemanticSegmentationLabelSource",
    "SemanticSegmentationLabels",
    "aoi_window_mask",
    "chip_weights",
    "class_ids_from_scores",
    "make_ss_scene",
    "rasterize_window",
]
