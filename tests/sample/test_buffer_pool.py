"""Batch storages reused across batches, in one process and from DataLoader workers."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, default_collate

import geoxr.sample._batch as batch_module
from geoxr import SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.sample._buffer_pool import BufferPool

# 16 batches of 4: more batches than a worker's pool holds storages for.
BATCH, BATCHES = 4, 16


@pytest.fixture(scope="module")
def nc_sliding(nc_stack, nc_strata, nc_class_config):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    dataset = SemanticSegmentationSlidingWindowGeoDataset(scene, size=32, stride=24)
    assert len(dataset) >= BATCH * BATCHES
    return dataset


@pytest.fixture(scope="module")
def expected(nc_sliding):
    """Every batch, read item by item with no pool involved."""
    items = [nc_sliding[i] for i in range(BATCH * BATCHES)]
    return [
        (
            torch.stack([c.image for c in items[k : k + BATCH]]),
            torch.stack([c.mask for c in items[k : k + BATCH]]),
        )
        for k in range(0, len(items), BATCH)
    ]


def loader(dataset, workers, **kwargs):
    # A timeout turns a stuck worker into a failure instead of a hung test run.
    timeout = {"timeout": 20} if workers else {}
    subset = torch.utils.data.Subset(dataset, range(BATCH * BATCHES))
    return DataLoader(subset, batch_size=BATCH, num_workers=workers, **timeout, **kwargs)


def test_a_storage_is_handed_out_again_only_once_let_go_of():
    pool = BufferPool(capacity=2)
    first, second = pool.empty((8,), torch.float64), pool.empty((8,), torch.float64)
    view = first[2:4]
    address = first.data_ptr()
    del first
    third = pool.empty((8,), torch.float64)  # the first is still held through a view
    assert address not in (third.data_ptr(), second.data_ptr())
    assert len(pool) == 2  # at capacity: the third was allocated fresh, not kept
    del view
    assert pool.empty((16,), torch.float32).data_ptr() == address  # same bytes, any layout
    assert pool.empty((4,), torch.float64).untyped_storage().nbytes() == 32  # never a larger one


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_held_by_the_main_process_are_never_written_again(nc_sliding, expected, workers):
    # Holding every batch: a worker must not write into a storage the main process holds.
    batches = list(loader(nc_sliding, workers))
    assert len(batches) == BATCHES
    for (images, masks), (want_images, want_masks) in zip(batches, expected, strict=True):
        assert torch.equal(images, want_images) and torch.equal(masks, want_masks)


def test_workers_write_batches_let_go_of_into_the_same_storages(nc_sliding, expected, monkeypatch):
    tickets = []
    receive = batch_module.received

    def noting(tensors, new):
        tickets.extend(t for t in new if t is not None)
        receive(tensors, new)

    monkeypatch.setattr(batch_module, "received", noting)
    kept = []
    for k, (images, masks) in enumerate(loader(nc_sliding, 1)):
        assert torch.equal(images, expected[k][0]) and torch.equal(masks, expected[k][1])
        if k in (0, 8):
            kept.append((k, images, masks))  # two are held, the rest let go of
    assert len(tickets) == 2 * BATCHES  # image and mask of every batch, each pooled
    storages = {t.position for t in tickets}
    assert len(storages) < len(tickets) // 2  # storages were written again
    assert len({t.generation for t in tickets}) == len(tickets)
    for k, images, masks in kept:  # and none the main process held
        assert torch.equal(images, expected[k][0]) and torch.equal(masks, expected[k][1])


def _items_as_they_are(items):
    return items


def _images_doubled(items):
    images, masks = default_collate(items)
    return images * 2, masks, images


@pytest.mark.parametrize("collate", [_items_as_they_are, _images_doubled])
def test_storages_sent_by_a_collate_function_of_the_users_own_are_not_written_again(
    nc_sliding, expected, collate
):
    batches = list(loader(nc_sliding, 1, collate_fn=collate))
    for batch, (want_images, want_masks) in zip(batches, expected, strict=True):
        if collate is _items_as_they_are:  # the sample views of the pooled storages
            images = torch.stack([c.image for c in batch])
            masks = torch.stack([c.mask for c in batch])
        else:
            doubled, masks, images = batch
            assert torch.equal(doubled, want_images * 2)
        assert torch.equal(images, want_images) and torch.equal(masks, want_masks)


def test_persistent_workers_keep_their_pool_across_epochs(nc_sliding, expected):
    epochs = loader(nc_sliding, 2, persistent_workers=True)
    for _ in range(2):
        for (images, masks), (want_images, want_masks) in zip(epochs, expected, strict=True):
            assert torch.equal(images, want_images) and torch.equal(masks, want_masks)
