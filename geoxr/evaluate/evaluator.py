"""SemanticSegmentationEvaluator: per-class metrics of predictions against ground truth."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import xarray as xr

from geoxr.errors import ClassConfigError, CRSMismatchError, LabelsError
from geoxr.evaluate.confusion import confusion_matrix_lazy
from geoxr.grid import Grid
from geoxr.label import ClassConfig, SemanticSegmentationLabels, SemanticSegmentationLabelSource
from geoxr.label.labels import checked_class_ids, yx_class_ids
from geoxr.learn.metrics import segmentation_metrics, without_nan
from geoxr.read.stats import valid_pixels

__all__ = ["SemanticSegmentationEvaluator"]

Truth = SemanticSegmentationLabelSource | SemanticSegmentationLabels | xr.DataArray


def _class_ids(labels: Truth, name: str) -> xr.DataArray:
    """``(y, x)`` class ids of ``labels`` (a one-band ``(band, y, x)`` raster as it opens)."""
    if isinstance(labels, xr.DataArray):
        return yx_class_ids(labels, name.capitalize())
    if isinstance(labels, SemanticSegmentationLabelSource):
        return labels.data
    if isinstance(labels, SemanticSegmentationLabels):
        return labels.class_ids
    raise LabelsError(
        f"The {name} is a {type(labels).__name__}; expected SemanticSegmentationLabels, a "
        "SemanticSegmentationLabelSource or a georeferenced DataArray of class ids (e.g. "
        "rioxarray.open_rasterio of a COG). Wrap a numpy array with grid.wrap(ids, "
        "dims=('y', 'x'))."
    )


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
        prediction: Truth,
        *,
        aoi_polygons: shapely.Geometry | Iterable[shapely.Geometry] | None = None,
    ) -> dict[str, Any]:
        """Metrics of ``prediction`` against ``truth`` over the scene (or its AOI).

        Either may be labels, a label source or a DataArray of class ids (a COG read
        back with rioxarray, say). ``aoi_polygons`` is a Polygon, a sequence of them, or a GeoSeries or
        GeoDataFrame (reprojected to the prediction's CRS).

        Returns
        -------
        dict
            ``miou``, ``accuracy``, ``pixels``, ``per_class`` (precision, recall,
            F1, IoU, support and predicted pixel counts) and ``confusion_matrix``.
        """
        for name, labels in (("truth", truth), ("prediction", prediction)):
            config = getattr(labels, "class_config", None)
            if config is not None and not config.same_classes(self.class_config):
                raise ClassConfigError(
                    f"The {name}'s classes {list(config.names)} are not the evaluator's "
                    f"{list(self.class_config.names)}: the ids would name other classes. "
                    "Evaluate with the class config both were made with."
                )
        if not isinstance(prediction, SemanticSegmentationLabels):  # class ids read back
            ids = _class_ids(prediction, "prediction")
            prediction = SemanticSegmentationLabels(
                grid=Grid.from_dataarray(ids), class_config=self.class_config, class_ids=ids
            )
        if aoi_polygons is not None:
            prediction = prediction.filter_by_aoi(aoi_polygons)
        truth_ids, pred_ids = _class_ids(truth, "truth"), prediction.class_ids
        if not Grid.from_dataarray(truth_ids).aligned_with(prediction.grid):
            raise CRSMismatchError(
                f"Truth is on {Grid.from_dataarray(truth_ids)} but the prediction is on "
                f"{prediction.grid}; evaluate on the prediction's scene grid."
            )
        null = self.class_config.ignore_class_id
        # A truth raster's nodata (and NaN) is no label, as the null class: the truth's
        # pixels only (a prediction of that value's class is a prediction like any other),
        # compared as the values they are (a float nodata is no int: -3.4e38, 0.5).
        if isinstance(truth, xr.DataArray) and truth_ids.rio.nodata is not None:
            # In a dtype that holds the null id (256 classes and more on uint8 ids).
            dtype = np.promote_types(truth_ids.dtype, np.min_scalar_type(null))
            truth_ids = truth_ids.astype(dtype).where(valid_pixels(truth_ids), null)
        truth_checked, pred_checked = (
            ids.copy(
                data=checked_class_ids(
                    ids.data,
                    self.class_config,
                    label=f"The {name}",
                    fix="Evaluate with the class config the ids were made with.",
                    skip=[null],
                )
            )
            for name, ids in (("truth", truth_ids), ("prediction", pred_ids))
        )
        n = len(self.class_config)
        cm = np.asarray(
            confusion_matrix_lazy(truth_checked, pred_checked, n, ignore=[null]).compute()
        )
        metrics = segmentation_metrics(cm, list(self.class_config.names), ignore_index=null)
        metrics["confusion_matrix"] = cm.tolist()
        metrics["class_names"] = list(self.class_config.names)
        return metrics

    @staticmethod
    def save(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
        """Write metrics as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # NaN (a metric of no pixels) is not JSON: null.
        path.write_text(json.dumps(without_nan(metrics), indent=2, allow_nan=False))
        return path
