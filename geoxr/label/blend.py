"""Blend overlapping chip predictions into one window with smooth weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from geoxr.errors import ConfigError
from geoxr.grid import Window

__all__ = ["BlendMode", "ScoreAccumulator", "check_blend", "chip_weights", "single_cover"]

BlendMode = Literal["cosine", "uniform"]
_BLEND_MODES = get_args(BlendMode)


def check_blend(blend: object) -> None:
    """Raise a ConfigError unless ``blend`` is a :data:`BlendMode`.

    Checked where blending is asked for: only overlapping chips are blended, so a
    mode checked where it is used would pass unseen (or fail midway through a write).

    Examples
    --------
    >>> check_blend("gaussian")
    Traceback (most recent call last):
    ...
    geoxr.errors.ConfigError: blend must be 'cosine' or 'uniform', got 'gaussian'.
    """
    if blend not in _BLEND_MODES:
        raise ConfigError(f"blend must be {' or '.join(map(repr, _BLEND_MODES))}, got {blend!r}.")


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
    check_blend(blend)
    if blend == "uniform":
        return np.ones(shape, np.float32)
    rows = np.sin(np.pi * (np.arange(shape[0]) + 0.5) / shape[0]) ** 2
    cols = np.sin(np.pi * (np.arange(shape[1]) + 0.5) / shape[1]) ** 2
    return np.outer(rows, cols).astype(np.float32)


def single_cover(chips: Sequence[Window], target: Window) -> set[Window]:
    """The chips whose part inside ``target`` no other chip of ``chips`` overlaps.

    Chips come from a regular grid (rows and columns of equal spans), so this is
    decided per axis.

    Examples
    --------
    >>> chips = [Window(0, 0, 4, 4), Window(0, 4, 4, 4), Window(0, 6, 4, 4)]
    >>> sorted(c.col_off for c in single_cover(chips, Window(0, 0, 4, 10)))
    [0]
    """
    rows = sorted({(c.ymin, c.ymax) for c in chips})
    cols = sorted({(c.xmin, c.xmax) for c in chips})

    def alone(spans: list[tuple[int, int]], lo: int, hi: int) -> set[tuple[int, int]]:
        return {
            s
            for s in spans
            if all(o == s or o[1] <= max(s[0], lo) or o[0] >= min(s[1], hi) for o in spans)
        }

    ok_rows = alone(rows, target.ymin, target.ymax)
    ok_cols = alone(cols, target.xmin, target.xmax)
    times = Counter(chips)  # a chip given twice overlaps itself: blended, not copied over
    return {
        c
        for c in chips
        if times[c] == 1 and (c.ymin, c.ymax) in ok_rows and (c.xmin, c.xmax) in ok_cols
    }


def _nan_outside(num_classes: int, target: Window, chips: Sequence[Window] | None) -> np.ndarray:
    """Uninitialised ``(class, h, w)`` float32 scores, NaN where none of ``chips`` reaches.

    Every pixel a chip reaches is written later (copied or blended), so only the
    others need a value now: filling the whole window first would write every
    score twice. Without ``chips`` the whole window starts NaN.
    """
    out = np.empty((num_classes, *target.shape), np.float32)
    if chips is None:
        out.fill(np.nan)
        return out
    covered = np.zeros(target.shape, bool)
    for chip in chips:
        inner = chip.intersection(target)
        if inner is not None:
            covered[inner.slices_in(target)] = True
    if not covered.all():
        np.copyto(out, np.nan, where=~covered)
    return out


class ScoreAccumulator:
    """Weighted mean of chip scores over one target window (a block or a whole scene).

    When the chips to come are given (``chips``: every chip that will be added),
    those that no other chip overlaps inside the target are copied rather than
    blended (a pixel under a single chip keeps that chip's value anyway), which
    spares the weighting for non-overlapping grids, and only the pixels none of
    them reaches are set to NaN up front.

    Examples
    --------
    >>> acc = ScoreAccumulator(2, Window(0, 0, 2, 3), blend="uniform")
    >>> acc.add(Window(0, 0, 2, 2), np.ones((2, 2, 2), np.float32))
    >>> acc.add(Window(0, 1, 2, 2), np.zeros((2, 2, 2), np.float32))
    >>> acc.result()[0]
    array([[1. , 0.5, 0. ],
           [1. , 0.5, 0. ]], dtype=float32)
    """

    def __init__(
        self,
        num_classes: int,
        target: Window,
        *,
        chips: Sequence[Window] | None = None,
        blend: BlendMode = "cosine",
    ) -> None:
        self.target = target
        check_blend(blend)
        self.blend = blend
        self._alone = set() if chips is None else single_cover(chips, target)
        self._out = _nan_outside(num_classes, target, chips)
        # Weighted score sums and weight sums of the blended chips, made with the first.
        self._blended: tuple[np.ndarray, np.ndarray] | None = None
        self._chip_weights: dict[tuple[int, int], np.ndarray] = {}

    def add(self, chip: Window, scores: np.ndarray) -> None:
        """Add one chip's ``(class, h, w)`` scores; the part outside the target is ignored."""
        inner = chip.intersection(self.target)
        if inner is None:
            return
        src = (slice(None), *inner.slices_in(chip))
        dst = (slice(None), *inner.slices_in(self.target))
        if chip in self._alone:
            self._out[dst] = scores[src]
            return
        weights = self._chip_weights.get(chip.shape)
        if weights is None:
            weights = self._chip_weights[chip.shape] = chip_weights(chip.shape, self.blend)
        if self._blended is None:
            self._blended = np.zeros_like(self._out), np.zeros(self.target.shape, np.float32)
        sums, weight_sums = self._blended
        w = weights[src[1:]]
        sums[dst] += scores[src] * w
        weight_sums[dst[1:]] += w

    def result(self) -> np.ndarray:
        """Blended ``(class, h, w)`` float32 scores; NaN where no chip reached."""
        if self._blended is not None:
            sums, weight_sums = self._blended
            # Whole planes with a mask: no gather/scatter of the blended pixels.
            np.divide(sums, weight_sums, out=self._out, where=weight_sums > 0)
        return self._out
