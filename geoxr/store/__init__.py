"""STORE: write labels as Zarr (resumable), COG and vectors; read them back."""

from geoxr.store.cog import read_cog_labels, write_cog_labels
from geoxr.store.label_store import SemanticSegmentationLabelStore, VectorOutput
from geoxr.store.vector import write_vector_labels
from geoxr.store.zarr import read_zarr_labels, write_zarr_labels

__all__ = [
    "SemanticSegmentationLabelStore",
    "VectorOutput",
    "read_cog_labels",
    "read_zarr_labels",
    "write_cog_labels",
    "write_vector_labels",
    "write_zarr_labels",
]
