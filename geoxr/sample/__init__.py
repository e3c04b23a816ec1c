"""SAMPLE: window datasets for torch."""

from geoxr.sample._batch import Chip
from geoxr.sample.dataset import GeoDataset
from geoxr.sample.semantic_segmentation import (
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
)

__all__ = [
    "Chip",
    "GeoDataset",
    "SemanticSegmentationRandomWindowGeoDataset",
    "SemanticSegmentationSlidingWindowGeoDataset",
]
