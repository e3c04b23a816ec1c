"""Tests of geoxr.learn.metrics: the confusion matrix behind validation metrics."""

import numpy as np
import torch

from geoxr.learn.metrics import confusion_matrix


def test_uint8_ids_of_twenty_classes_are_counted_where_they_belong():
    # truth * num_classes overflowed uint8: 17 -> 3 landed in cell (4, 7).
    truth = torch.tensor([17, 2, 5], dtype=torch.uint8)
    pred = torch.tensor([3, 2, 5], dtype=torch.uint8)
    cm = confusion_matrix(truth, pred, 20).numpy()
    expected = np.zeros((20, 20), np.int64)
    expected[17, 3] = expected[2, 2] = expected[5, 5] = 1
    np.testing.assert_array_equal(cm, expected)


def test_predictions_that_are_no_class_id_are_left_out():
    # A prediction of 5 with 3 classes was counted in the next row, as (2, 2): correct.
    cm = confusion_matrix(torch.tensor([1, 0]), torch.tensor([5, 0]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
