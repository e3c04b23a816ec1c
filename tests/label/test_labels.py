"""SemanticSegmentationLabels: what they need, and class ids that follow their scores."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from affine import Affine

import geoxr
from geoxr.errors import LabelsError


@pytest.fixture
def scores(tmp_path):
    """``(class, y, x)`` scores of classes a, b and null, read from a GeoTIFF, in 16-pixel blocks."""
    path = tmp_path / "scores.tif"
    values = np.random.default_rng(7).random((3, 24, 32), np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=32,
        height=24,
        count=3,
        dtype="float32",
        crs="EPSG:32616",
        transform=Affine(3, 0, 700, 0, -3, 300),
    ) as dst:
        dst.write(values)
    source = geoxr.RasterioSource(path)
    return source.grid, source.data.rename({"band": "class"}).chunk({"y": 16, "x": 16}), values


def test_labels_without_scores_or_class_ids_are_refused_saying_what_to_give(scores):
    grid, _, _ = scores
    with pytest.raises(
        LabelsError, match=r"neither scores nor class_ids.*give scores=.*class_ids="
    ):
        geoxr.SemanticSegmentationLabels(grid=grid, class_config=geoxr.ClassConfig(["a", "b"]))


def test_predictions_of_the_wrong_shape_are_refused_naming_the_window(scores):
    grid, _, _ = scores
    windows = geoxr.sliding_windows(grid.shape, 8, 8)
    good = [np.zeros((3, 8, 8), np.float32)] * len(windows)
    for wrong, shape in (((2, 8, 8), r"\(2, 8, 8\)"), ((3, 8, 7), r"\(3, 8, 7\)")):
        predictions = [*good[:-1], np.zeros(wrong, np.float32)]
        with pytest.raises(
            LabelsError,
            match=rf"{re.escape(str(windows[-1]))} has shape {shape}; expected \(3, 8, 8\) "
            r"\(one channel per class",
        ):
            geoxr.SemanticSegmentationLabels.from_predictions(
                windows, predictions, grid=grid, class_config=geoxr.ClassConfig(["a", "b"])
            )


def test_predictions_one_per_window_and_a_window_given_twice_is_blended(scores):
    grid, _, _ = scores
    windows = geoxr.sliding_windows(grid.shape, 8, 8)
    config = geoxr.ClassConfig(["a", "b"])
    ones = [np.ones((3, 8, 8), np.float32)] * len(windows)
    # A raw ValueError from zip() before, for fewer predictions as for more.
    for given, word in ((ones[:-1], "fewer"), ([*ones, ones[0]], "more")):
        with pytest.raises(LabelsError, match=rf"{len(windows)} windows but {word} predictions"):
            geoxr.SemanticSegmentationLabels.from_predictions(
                windows, given, grid=grid, class_config=config
            )
    # The second copy of a window was copied over the first, not blended with it.
    twice = [windows[0], *windows]
    predictions = [np.zeros((3, 8, 8), np.float32), *ones]
    labels = geoxr.SemanticSegmentationLabels.from_predictions(
        twice, predictions, grid=grid, class_config=config, blend="uniform"
    )
    first = labels.scores.values[:, :8, :8]
    np.testing.assert_allclose(first, 0.5)
    np.testing.assert_allclose(labels.scores.values[:, 8:, 8:], 1.0)
    # Nested lists (and tensors) are predictions too: a raw AttributeError before.
    as_lists = geoxr.SemanticSegmentationLabels.from_predictions(
        twice, [p.tolist() for p in predictions], grid=grid, class_config=config, blend="uniform"
    )
    np.testing.assert_array_equal(as_lists.scores.values, labels.scores.values)


def test_windows_of_labels_reaching_past_the_scene_are_padded_as_label_sources_pad_them(scores):
    # labels[w] raised a WindowError for the last window of a sliding plan, which datasets
    # and label sources pad.
    grid, data, values = scores
    config = geoxr.ClassConfig(["a", "b"])
    labels = geoxr.SemanticSegmentationLabels(grid=grid, class_config=config, scores=data)
    ids = (values[1] > values[0]).astype(np.uint8)
    window = geoxr.Window(16, 24, 16, 16)  # 8 rows and 8 columns past the scene's edge
    got = labels[window]
    assert got.shape == (16, 16) and (got[8:] == 2).all() and (got[:, 8:] == 2).all()
    np.testing.assert_array_equal(got[:8, :8], ids[16:, 24:])
    np.testing.assert_array_equal(labels.get_label_arr(window), got)
    np.testing.assert_array_equal(labels.get_label_arr(), ids)
    score_arr = labels.get_score_arr(window)
    assert score_arr.shape == (3, 16, 16) and np.isnan(score_arr[:, 8:]).all()
    np.testing.assert_array_equal(score_arr[:, :8, :8], values[:, 16:, 24:])
    np.testing.assert_array_equal(labels.get_score_arr(), values)
    outside = labels.get_label_arr(geoxr.Window(100, 100, 4, 4))
    assert outside.shape == (4, 4) and (outside == 2).all()
    ids_only = geoxr.SemanticSegmentationLabels(
        grid=grid, class_config=config, class_ids=labels.class_ids
    )
    with pytest.raises(LabelsError, match="class ids only, no scores"):
        ids_only.get_score_arr(window)


def test_class_ids_follow_scores_assigned_after_they_were_asked_for(scores):
    grid, data, values = scores
    labels = geoxr.SemanticSegmentationLabels(
        grid=grid, class_config=geoxr.ClassConfig(["a", "b"]), scores=data
    )
    # Null (2) never wins where a or b has a score.
    np.testing.assert_array_equal(
        labels.class_ids.values, (values[1] > values[0]).astype(np.uint8)
    )
    labels.scores = data[::-1].assign_coords(
        {"class": data["class"].values}
    )  # a's and null's swapped
    np.testing.assert_array_equal(
        labels.class_ids.values, (values[1] > values[2]).astype(np.uint8)
    )
    assert labels.class_ids.rio.nodata == 2
    with pytest.raises(geoxr.CRSMismatchError, match="Labels scores are on"):
        labels.scores = data.isel(x=slice(1, None))
    given = labels.class_ids.compute()
    explicit = geoxr.SemanticSegmentationLabels(
        grid=grid, class_config=geoxr.ClassConfig(["a", "b"]), scores=data, class_ids=given
    )
    explicit.scores = data * 0  # class ids given with the scores stay as given
    np.testing.assert_array_equal(explicit.class_ids.values, given.values)
