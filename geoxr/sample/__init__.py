"""SAMPLE: window datasets for torch and band normalisation."""

from geoxr.sample.dataset import GeoDataset
from geoxr.sample.normalize import BandStats, compute_band_stats
from geoxr.sample.semantic_segmentation import (
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
)

__all__ = [
    "BandStats",
    "GeoDataset",
    "SemanticSegmentationRandomWindowGeoDataset",
    "SemanticSegmentationSlidingWindowGeoDataset",
    "compute_band_stats",
]
