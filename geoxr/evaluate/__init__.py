"""EVALUATE: confusion matrices as dask reductions and per-class metrics."""

from geoxr.evaluate.confusion import confusion_matrix_lazy
from geoxr.evaluate.evaluator import SemanticSegmentationEvaluator

__all__ = ["SemanticSegmentationEvaluator", "confusion_matrix_lazy"]
