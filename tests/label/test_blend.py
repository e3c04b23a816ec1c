"""ScoreAccumulator: copied and blended chips, and pixels no chip reaches."""

from __future__ import annotations

import numpy as np
import pytest

import geoxr
from geoxr.grid import Window
from geoxr.label.blend import ScoreAccumulator, chip_weights


def test_unreached_pixels_are_nan_and_reached_ones_keep_copied_or_blended_scores() -> None:
    target = Window(0, 0, 8, 10)
    # Two chips side by side (each alone: copied), two overlapping ones below them
    # (blended), and parts of the target that no chip reaches.
    alone = [Window(0, 0, 3, 4), Window(0, 4, 3, 4)]
    blended = [Window(3, 0, 4, 4), Window(3, 2, 4, 4)]
    chips = alone + blended
    values = {
        chip: np.full((2, 4, 4), k + 1, np.float32)[:, : chip.height]
        for k, chip in enumerate(chips)
    }
    acc = ScoreAccumulator(2, target, chips=chips, blend="cosine")
    for chip in chips:
        acc.add(chip, values[chip])
    out = acc.result()

    expected = np.full((2, *target.shape), np.nan, np.float32)
    expected[:, 0:3, 0:4] = 1
    expected[:, 0:3, 4:8] = 2
    w = chip_weights((4, 4))
    left, right = np.zeros((8, 10)), np.zeros((8, 10))
    left[3:7, 0:4], right[3:7, 2:6] = w, w
    total = left + right
    reached = total > 0
    expected[:, reached] = ((3 * left + 4 * right)[reached] / total[reached]).astype(np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(out[:, 7]).all() and np.isnan(out[:, :, 8:]).all()  # no chip there


def test_unknown_blend_raises() -> None:
    with pytest.raises(
        geoxr.ConfigError, match=r"blend must be 'cosine' or 'uniform', got 'linear'"
    ):
        chip_weights((4, 4), "linear")  # type: ignore[arg-type]
