"""PREDICT: block-wise, lazy scene prediction with dask."""

from geoxr.predict.blocks import predict_block
from geoxr.predict.model_cache import ModelRef, load_cached
from geoxr.predict.predict import predict_scene

__all__ = ["ModelRef", "load_cached", "predict_block", "predict_scene"]
