"""PREDICT: block-wise, lazy scene prediction with dask."""

from geoxr.predict.blocks import predict_block
from geoxr.predict.model_cache import ModelRef, load_cached
from geoxr.predict.predict import block_chunks, predict_scene

__all__ = ["ModelRef", "block_chunks", "load_cached", "predict_block", "predict_scene"]
