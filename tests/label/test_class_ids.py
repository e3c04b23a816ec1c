"""Class ids from scores: arg-max over the classes, never the null class unless no score."""

from __future__ import annotations

import numpy as np
import pytest

from geoxr.label import class_ids_from_scores


def _reference(scores: np.ndarray, null_class_id: int) -> np.ndarray:
    """Per pixel, the first class with the highest score; the null class where all are NaN or -inf."""
    ids = np.full(scores.shape[1:], null_class_id)
    for y, x in np.ndindex(*scores.shape[1:]):
        pixel = [
            (-float(v), c)
            for c, v in enumerate(scores[:, y, x])
            if c != null_class_id and not np.isnan(v) and v != -np.inf
        ]
        if pixel:
            ids[y, x] = min(pixel)[1]
    return ids


@pytest.mark.parametrize("null_class_id", [0, 2, 4])
def test_class_ids_match_a_per_pixel_arg_max_with_ties_nan_and_infinities(null_class_id) -> None:
    rng = np.random.default_rng(7)
    # Few distinct values, so ties are common; NaN and infinite scores mixed in.
    scores = rng.choice(
        np.array([0.1, 0.5, 0.5, 0.9, np.nan, -np.inf, np.inf], np.float32), size=(4, 40, 50)
    )
    scores[:, :3, :3] = np.nan  # no score at all: the null class
    ids = class_ids_from_scores(scores, null_class_id)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, _reference(scores, null_class_id))
    assert (ids[:3, :3] == null_class_id).all()


def test_class_ids_beyond_256_classes_are_int32() -> None:
    scores = np.zeros((300, 2, 2), np.float32)
    scores[299, 0, 0] = 1.0
    scores[257, 1, 1] = 1.0
    ids = class_ids_from_scores(scores, 0)
    assert ids.dtype == np.int32
    assert ids.tolist() == [[299, 1], [1, 257]]


def test_float64_scores_closer_than_float32_precision_keep_their_order() -> None:
    scores = np.array([[[1 + 5e-13]], [[1 + 1e-12]], [[np.nan]]])
    assert class_ids_from_scores(scores, 2).tolist() == [[1]]
    assert class_ids_from_scores(scores[::-1].copy(), 0).tolist() == [[1]]  # 1 + 1e-12 again
