"""Blend overlapping chip predictions into one window with smooth weights."""

from __future__ import annotations

from typing import Literal

import numpy as np

from geoxr.grid import Window

__all__ = ["BlendMode", "ScoreAccumulator", "chip_weights"]

BlendMode = Literal["cosine", "uniform"]


def chip_weights(shape: tuple[int, int], blend: BlendMode = "cosine") -> np.ndarray:
    """Per-pixel weight of a chip: a squared-sine taper (``'cosine'``) or ones.

    The taper is highest in the centre and small but positive at the edges, so
    chip borders (where a model sees least context) count least where chips
    overlap, and a pixel covered by a single chip keeps that chip's value.

    Examples
    --------
    >>> w = chip_weights((4, 4))
    >>> w.shape, bool(w.min() > 0), bool(w[1, 1] > w[0, 0])
    ((4, 4), True, True)
    """
    if blend == "uniform":
        return np.ones(shape, np.float32)
    if blend != "cosine":
        raise ValueError(f"blend must be 'cosine' or 'uniform', got {blend!r}.")
    rows = np.sin(np.pi * (np.arange(shape[0]) + 0.5) / shape[0]) ** 2
    cols = np.sin(np.pi * (np.arange(shape[1]) + 0.5) / shape[1]) ** 2
    return np.outer(rows, cols).astype(np.float32)


class ScoreAccumulator:
    """Weighted sum of chip scores over one target window (a block or a whole scene).

    Examples
    --------
    >>> acc = ScoreAccumulator(2, Window(0, 0, 2, 3), blend="uniform")
    >>> acc.add(Window(0, 0, 2, 2), np.ones((2, 2, 2), np.float32))
    >>> acc.add(Window(0, 1, 2, 2), np.zeros((2, 2, 2), np.float32))
    >>> acc.result()[0]
    array([[1. , 0.5, 0. ],
           [1. , 0.5, 0. ]], dtype=float32)
    """

    def __init__(self, num_classes: int, target: Window, *, blend: BlendMode = "cosine") -> None:
        self.target = target
        self.blend = blend
        self.sums = np.zeros((num_classes, *target.shape), np.float32)
        self.weights = np.zeros(target.shape, np.float32)
        self._chip_weights: dict[tuple[int, int], np.ndarray] = {}

    def add(self, chip: Window, scores: np.ndarray) -> None:
        """Add one chip's ``(class, h, w)`` scores; the part outside the target is ignored."""
        inner = chip.intersection(self.target)
        if inner is None:
            return
        weights = self._chip_weights.get(chip.shape)
        if weights is None:
            weights = self._chip_weights[chip.shape] = chip_weights(chip.shape, self.blend)
        src = (
            slice(inner.ymin - chip.ymin, inner.ymax - chip.ymin),
            slice(inner.xmin - chip.xmin, inner.xmax - chip.xmin),
        )
        dst = (
            slice(inner.ymin - self.target.ymin, inner.ymax - self.target.ymin),
            slice(inner.xmin - self.target.xmin, inner.xmax - self.target.xmin),
        )
        w = weights[src]
        self.sums[(slice(None), *dst)] += scores[(slice(None), *src)] * w
        self.weights[dst] += w

    def result(self) -> np.ndarray:
        """Blended ``(class, h, w)`` float32 scores; NaN where no chip reached."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.sums / self.weights
        out[:, self.weights == 0] = np.nan
        return out
