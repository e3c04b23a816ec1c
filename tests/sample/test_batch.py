"""Batches assembled in place: samples read into their batch's slots, handed over uncopied."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

import geoxr.sample._batch as batch_module
from geoxr import SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.sample import Chip
from geoxr.sample._batch import BatchBuffers, Slot, collate_chips


@pytest.fixture(scope="module")
def nc_sliding(nc_stack, nc_strata, nc_class_config):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    return SemanticSegmentationSlidingWindowGeoDataset(scene, size=64, stride=64)


@pytest.fixture
def stacks(monkeypatch) -> list[int]:
    """Counts the fields collated by stacking (the fallback), not handed over."""
    calls: list[int] = []
    stack = batch_module.collate

    def counting(samples, **kwargs):
        calls.append(len(samples))
        return stack(samples, **kwargs)

    monkeypatch.setattr(batch_module, "collate", counting)
    return calls


def test_loader_batches_are_the_tensors_the_samples_were_read_into(nc_sliding, stacks):
    images, masks = next(iter(DataLoader(nc_sliding, batch_size=4)))
    assert stacks == []  # nothing stacked: the batch's own tensors
    for k in range(4):
        image, mask = nc_sliding[k]
        assert torch.equal(images[k], image) and torch.equal(masks[k], mask)
    assert images.shape == (4, 6, 64, 64) and masks.dtype == torch.int64


def test_a_sampler_repeating_an_index_gets_stacked_copies(nc_sliding, stacks):
    loader = DataLoader(nc_sliding, batch_sampler=[[7, 7, 2]])
    images, masks = next(iter(loader))
    assert stacks == [3, 3]  # one slot of the batch was never read: stacked instead
    expected = [nc_sliding[i] for i in (7, 7, 2)]
    assert torch.equal(images, torch.stack([e.image for e in expected]))
    assert torch.equal(masks, torch.stack([e.mask for e in expected]))


def test_samples_of_different_batches_or_layouts_are_stacked(stacks):
    first, second = BatchBuffers(2), BatchBuffers(2)
    layout = (((2, 3), torch.float32), ((), torch.float32))
    chips = []
    for buffers, value in ((first, 1.0), (second, 2.0)):
        image, mask = Slot(buffers, 0).claim(*layout)
        chips.append(Chip(image.fill_(value), mask.fill_(value)))
    images, masks = collate_chips(chips)
    assert stacks == [2, 2]
    assert images[:, 0, 0].tolist() == [1.0, 2.0] and masks.tolist() == [1.0, 2.0]
    assert Slot(first, 1).claim(((3, 3), torch.float32)) is None  # another layout: own tensors


def test_unlabelled_scene_batches_nan_masks(nc_stack, nc_class_config, stacks):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config)
    ds = SemanticSegmentationSlidingWindowGeoDataset(scene, size=64, stride=64)
    images, masks = next(iter(DataLoader(ds, batch_size=3)))
    assert stacks == [] and masks.shape == (3,) and torch.isnan(masks).all()
    assert torch.equal(images[2], ds[2].image)
