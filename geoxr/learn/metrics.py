"""Segmentation metrics from a confusion matrix (per-class IoU, mIoU, accuracy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["confusion_matrix", "segmentation_metrics", "without_nan"]


def confusion_matrix(
    truth: torch.Tensor, pred: torch.Tensor, num_classes: int, *, ignore_index: int | None = None
) -> torch.Tensor:
    """``(num_classes, num_classes)`` counts, rows = truth, columns = prediction.

    Ids of any integer dtype (uint8 included) are counted in int64. Pixels whose
    truth or prediction is not a class id (``0..num_classes - 1``) are left out.

    Examples
    --------
    >>> confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 0, 2]), 3, ignore_index=2)
    tensor([[1, 0, 0],
            [1, 1, 0],
            [0, 0, 0]])
    """
    truth, pred = truth.reshape(-1).long(), pred.reshape(-1).long()
    keep = (truth >= 0) & (truth < num_classes) & (pred >= 0) & (pred < num_classes)
    if ignore_index is not None:
        keep &= truth != ignore_index
    index = truth[keep] * num_classes + pred[keep]
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def segmentation_metrics(
    cm: np.ndarray, class_names: list[str], *, ignore_index: int | None = None
) -> dict[str, Any]:
    """Per-class IoU, precision, recall, F1; mIoU over classes present; overall accuracy.

    mIoU averages the classes (other than ``ignore_index``) that occur in the
    truth or the prediction.

    Examples
    --------
    >>> m = segmentation_metrics(np.array([[3, 1], [0, 4]]), ["a", "b"])
    >>> round(m["miou"], 4), m["accuracy"], m["per_class"]["a"]["iou"]
    (0.775, 0.875, 0.75)
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    union = support + predicted - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
    scored = [i for i in range(len(class_names)) if i != ignore_index and union[i] > 0]
    total = cm.sum()
    return {
        "miou": float(np.mean(iou[scored])) if scored else float("nan"),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "pixels": int(total),
        "per_class": {
            name: {
                "iou": _num(iou[i]),
                "precision": _num(precision[i]),
                "recall": _num(recall[i]),
                "f1": _num(f1[i]),
                "support": int(support[i]),
                "predicted": int(predicted[i]),
            }
            for i, name in enumerate(class_names)
            if i != ignore_index
        },
    }


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def without_nan(value: Any) -> Any:
    """``value`` with every float NaN in it (in dicts and lists too) replaced by ``None``.

    JSON has no NaN: metrics of classes that never occur are written as ``null``.

    Examples
    --------
    >>> without_nan({"miou": float("nan"), "iou": [0.5, float("nan")]})
    {'miou': None, 'iou': [0.5, None]}
    """
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
