"""SemanticSegmentationEvaluator: per-class metrics of predictions against ground truth."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import xarray as xr

from geoxr.errors import CRSMismatchError
from geoxr.evaluate.confusion import confusion_matrix_lazy
from geoxr.grid import Grid
from geoxr.label import ClassConfig, SemanticSegmentationLabels, SemanticSegmentationLabelSource
from geoxr.learn.metrics import segmentation_metrics

__all__ = ["SemanticSegmentationEvaluator"]

Truth = SemanticSegmentationLabelSource | SemanticSegmentationLabels | xr.DataArray


def _class_ids(labels: Truth) -> xr.DataArray:
    if isinstance(labels, xr.DataArray):
        return labels
    if isinstance(labels, SemanticSegmentationLabelSource):
        return labels.data
    return labels.class_ids


class SemanticSegmentationEvaluator:
    """Confusion matrix (a dask reduction) and per-class precision, recall, F1 and IoU.

    Null-class pixels of the truth or the prediction (unlabelled, nodata) and
    pixels outside the AOI are ignored.

    Parameters
    ----------
    class_config : ClassConfig
        The classes of truth and prediction.
    """

    def __init__(self, class_config: ClassConfig) -> None:
        self.class_config = class_config.ensure_null_class()

    def evaluate(
        self,
        truth: Truth,
        prediction: SemanticSegmentationLabels,
        *,
        aoi_polygons: Sequence[shapely.Geometry] | None = None,
    ) -> dict[str, Any]:
        """Metrics of ``prediction`` against ``truth`` over the scene (or its AOI).

        Returns
        -------
        dict
            ``miou``, ``accuracy``, ``pixels``, ``per_class`` (precision, recall,
            F1, IoU, support and predicted pixel counts) and ``confusion_matrix``.
        """
        if aoi_polygons is not None:
            prediction = prediction.filter_by_aoi(aoi_polygons)
        truth_ids, pred_ids = _class_ids(truth), prediction.class_ids
        if not Grid.from_dataarray(truth_ids).aligned_with(prediction.grid):
            raise CRSMismatchError(
                f"Truth is on {Grid.from_dataarray(truth_ids)} but the prediction is on "
                f"{prediction.grid}; evaluate on the prediction's scene grid."
            )
        null = self.class_config.ignore_class_id
        n = len(self.class_config)
        cm = np.asarray(confusion_matrix_lazy(truth_ids, pred_ids, n, ignore=[null]).compute())
        metrics = segmentation_metrics(cm, list(self.class_config.names), ignore_index=null)
        metrics["confusion_matrix"] = cm.tolist()
        metrics["class_names"] = list(self.class_config.names)
        return metrics

    @staticmethod
    def save(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
        """Write metrics as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics, indent=2))
        return path
