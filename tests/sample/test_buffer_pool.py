"""Batch storages reused across batches, in one process and from DataLoader workers."""

from __future__ import annotations

import copy
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing
from torch.utils.data import DataLoader, default_collate

import geoxr.sample._batch as batch_module
from geoxr import SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.sample import Chip
from geoxr.sample._batch import _SentChip
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


def test_a_storage_shared_with_another_process_is_not_handed_out_again():
    pool = BufferPool(capacity=2)
    sent = pool.empty((8,), torch.float64)
    ForkingPickler.dumps(sent)  # as a torch.multiprocessing queue does: into shared memory
    address = sent.data_ptr()
    del sent  # the receiving process may still read it
    assert pool.empty((8,), torch.float64).data_ptr() != address
    assert len(pool) == 1


def test_free_storages_of_other_sizes_make_room_within_capacity_and_bytes():
    def pooled(pool):
        return sorted(entry.storage.nbytes() for entry in pool._entries)

    pool = BufferPool(capacity=3, max_bytes=96)
    first, second = pool.empty((4,), torch.float64), pool.empty((4,), torch.float64)
    del first, second  # both free, 32 bytes each
    held = pool.empty((8,), torch.float64)  # 64 bytes: one free storage goes to make room
    assert pooled(pool) == [32, 64]
    address = held.data_ptr()
    del held
    assert pool.empty((8,), torch.float64).data_ptr() == address  # and it is reused
    pool.empty((16,), torch.float64)  # 128 bytes: past max_bytes, allocated but never kept
    assert pooled(pool) == [32, 64]


def test_a_copy_of_a_batch_leaving_a_worker_is_a_plain_chip_without_tickets(monkeypatch):
    tickets = []
    monkeypatch.setattr(batch_module, "ticket", lambda tensor: tickets.append(tensor))
    batch = _SentChip(torch.arange(4.0), torch.arange(4))
    for copied in (copy.copy(batch), copy.deepcopy(batch)):
        assert type(copied) is Chip
        assert torch.equal(copied.image, batch.image) and torch.equal(copied.mask, batch.mask)
    assert tickets == []  # a ticket is for a batch on its way to the main process only


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_held_by_the_main_process_are_never_written_again(nc_sliding, expected, workers):
    # Holding every batch: a worker must not write into a storage the main process holds.
    batches = list(loader(nc_sliding, workers))
    assert len(batches) == BATCHES
    for (images, masks), (want_images, want_masks) in zip(batches, expected, strict=True):
        assert torch.equal(images, want_images) and torch.equal(masks, want_masks)


@pytest.fixture
def tickets(monkeypatch):
    """The tickets of every batch the main process receives from workers (None: no pool)."""
    seen = []
    receive = batch_module.received

    def noting(tensors, new):
        seen.extend(new)
        receive(tensors, new)

    monkeypatch.setattr(batch_module, "received", noting)
    return seen


def _storages(tickets):
    """Distinct pooled storages: (the worker pool's released array, position in it)."""
    return {(t.released.data_ptr(), t.position) for t in tickets}


def test_workers_write_batches_let_go_of_into_the_same_storages(nc_sliding, expected, tickets):
    kept = []
    for k, (images, masks) in enumerate(loader(nc_sliding, 1)):
        assert torch.equal(images, expected[k][0]) and torch.equal(masks, expected[k][1])
        if k in (0, 8):
            kept.append((k, images, masks))  # two are held, the rest let go of
    assert len(tickets) == 2 * BATCHES and None not in tickets  # every batch pooled
    assert len(_storages(tickets)) < len(tickets) // 2  # storages were written again
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


def test_persistent_workers_keep_their_pool_across_epochs(nc_sliding, expected, tickets):
    epochs = loader(nc_sliding, 2, persistent_workers=True)
    held = None
    for epoch in range(2):
        for k, (images, masks) in enumerate(epochs):
            assert torch.equal(images, expected[k][0]) and torch.equal(masks, expected[k][1])
            if epoch == 0 and k == 0:
                held = (images, masks)  # held through the second epoch
    assert torch.equal(held[0], expected[0][0]) and torch.equal(held[1], expected[0][1])
    assert len(tickets) == 2 * 2 * BATCHES and None not in tickets
    first, second = _storages(tickets[: 2 * BATCHES]), _storages(tickets[2 * BATCHES :])
    assert len(first | second) < len(tickets) // 2  # storages written again
    assert first & second  # by the same pools, in both epochs


def test_without_reuse_every_batch_is_in_fresh_memory(
    nc_stack, nc_strata, nc_class_config, tickets
):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    dataset = SemanticSegmentationSlidingWindowGeoDataset(
        scene, size=32, stride=24, reuse_batch_memory=False
    )
    batches = list(loader(dataset, 1))
    assert len(tickets) == 2 * BATCHES and set(tickets) == {None}  # nothing pooled
    reference = list(loader(dataset, 0))
    for (images, masks), (want_images, want_masks) in zip(batches, reference, strict=True):
        assert torch.equal(images, want_images) and torch.equal(masks, want_masks)
