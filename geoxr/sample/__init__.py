"""SAMPLE: window datasets for torch."""

from geoxr.sample.dataset import GeoDataset
from geoxr.sample.semantic_segmentation import (
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
)

__all__ = [
    "GeoDataset",
    "SemanticSegmentationRandomWindowGeoDataset",
    "SemanticSegmentationSlidingWindowGeoDataset",
]
