"""Batch storages written again once nobody holds them, also across DataLoader workers.

A DataLoader worker sends each batch to the main process in shared memory. A
fresh shared storage per batch costs a page fault and a zeroed page for every
4 KiB written: for 16 chips of 256 x 256 (21 MB of float32 image and int64 mask)
that took longer than reading them. A :class:`BufferPool` keeps the storages of
a process's batches and hands one out again once nobody holds it any more:

- in one process: once nothing but the pool holds the storage;
- sent from a DataLoader worker: once the main process has let go of it. A batch
  leaving a worker carries a :class:`Ticket` for each pooled storage
  (:func:`ticket`, called while the batch is pickled); on each batch it receives,
  the main process notes its tickets and reports those it no longer holds by
  writing their generation into the pool's *released* array, a small tensor in
  shared memory that the worker reads (:func:`received`);
- a pooled storage that left its worker without a ticket (sent by a collate
  function of the user's own) cannot be followed: the pool forgets it, and it is
  freed as usual once every holder lets go. So does a pool outside DataLoader
  workers with a storage that was shared with another process since (put on a
  ``torch.multiprocessing`` queue, ``share_memory_()``), which that process may
  still read.

A pool keeps at most ``capacity`` storages and ``max_bytes`` bytes; to make room
for a new size it lets go of free storages of other sizes. Results never depend
on the pool: it only saves allocations.

The main process cannot know of processes it passes a received batch on to: a
program that sends batches from DataLoader workers on to other processes turns
the pool off (``reuse_batch_memory=False`` on the dataset).
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.data import get_worker_info

__all__ = ["BufferPool", "Ticket", "received", "ticket"]

# How many C++ references a storage has (torch keeps no public name for this).
_use_count = getattr(torch._C, "_storage_Use_Count", None)


class Ticket(NamedTuple):
    """What the main process reports back about one pooled storage it received."""

    released: torch.Tensor  # the pool's released array, in shared memory
    position: int  # the storage's entry in it
    generation: int  # the use of the storage this batch was


@dataclass(eq=False)
class _Entry:
    """One pooled storage and its current use."""

    storage: torch.UntypedStorage
    position: int  # in the pool's released array
    generation: int
    released: torch.Tensor  # the pool's (no reference to the pool: no cycle to collect)
    lock: threading.Lock  # the pool's
    ticketed: bool = False


#: The entries of this process's shared pools, by storage address (for :func:`ticket`).
_shared_entries: weakref.WeakValueDictionary[int, _Entry] = weakref.WeakValueDictionary()


class BufferPool:
    """Storages for the batches of one process, each handed out again once free.

    In a DataLoader worker the storages are in shared memory, so a batch is sent
    as it is. ``capacity`` and ``max_bytes`` bound how many storages and bytes the
    pool keeps; past them, storages are allocated fresh and not kept.

    Examples
    --------
    >>> pool = BufferPool(capacity=2)
    >>> first = pool.empty((4, 4), torch.float32)
    >>> pool.empty((4, 4), torch.float32).data_ptr() == first.data_ptr()  # still held
    False
    >>> address = first.data_ptr()
    >>> del first
    >>> pool.empty((2, 8), torch.float32).data_ptr() == address  # let go of: handed out again
    True
    """

    def __init__(self, capacity: int = 16, max_bytes: int = 512 * 2**20) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.shared = get_worker_info() is not None
        self.released = torch.full((capacity,), -1, dtype=torch.int64)
        if self.shared:
            self.released.share_memory_()
        self._entries: list[_Entry] = []
        self._generations = itertools.count()
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor, in a free pooled storage where there is one."""
        nbytes = math.prod(shape) * dtype.itemsize
        with self._lock:
            entry = self._free_entry(nbytes)
            if entry is None:
                free_indices = set(range(self.capacity)) - {e.position for e in self._entries}
                over_budget = self._pooled_bytes() + nbytes > self.max_bytes
                if not free_indices or over_budget or _use_count is None:
                    return _view(self._allocate(nbytes), shape, dtype)
                storage = self._allocate(nbytes)
                entry = _Entry(storage, min(free_indices), -1, self.released, self._lock)
                self._entries.append(entry)
                if self.shared:
                    _shared_entries[entry.storage.data_ptr()] = entry
            entry.generation, entry.ticketed = next(self._generations), False
            # The view holds the storage before the lock is let go: no one else takes it.
            return _view(entry.storage, shape, dtype)

    def __len__(self) -> int:
        return len(self._entries)

    def _pooled_bytes(self) -> int:
        return sum(entry.storage.nbytes() for entry in self._entries)

    def _allocate(self, nbytes: int) -> torch.UntypedStorage:
        if self.shared:
            return torch.UntypedStorage._new_shared(nbytes)
        return torch.UntypedStorage(nbytes)

    def _free_entry(self, nbytes: int) -> _Entry | None:
        """A pooled storage of ``nbytes`` nobody holds, else ``None`` and room for one.

        Forgets the storages it cannot follow; without a free one of ``nbytes``,
        lets go of free ones of other sizes until a new one fits.
        """
        if _use_count is None:
            return None
        free = []
        for entry in list(self._entries):
            if _use_count(entry.storage._cdata) > 1:
                continue  # still held in this process
            # A worker follows a storage that left with a ticket; any other process,
            # one that was not shared with another process since.
            followed = entry.ticketed if self.shared else not entry.storage.is_shared()
            if not followed:
                self._entries.remove(entry)  # not ours to follow any more
                continue
            if self.shared and int(self.released[entry.position]) != entry.generation:
                continue  # the main process still holds it
            if entry.storage.nbytes() == nbytes:
                return entry
            free.append(entry)
        while (
            free
            and nbytes <= self.max_bytes
            and (
                len(self._entries) >= self.capacity
                or self._pooled_bytes() + nbytes > self.max_bytes
            )
        ):
            self._entries.remove(free.pop(0))
        return None


def _view(
    storage: torch.UntypedStorage, shape: tuple[int, ...], dtype: torch.dtype
) -> torch.Tensor:
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def ticket(tensor: torch.Tensor) -> Ticket | None:
    """The ticket of the pooled shared storage of ``tensor``, as it leaves its worker."""
    storage = tensor.untyped_storage()
    entry = _shared_entries.get(storage.data_ptr())
    if entry is None or entry.storage.nbytes() != storage.nbytes():
        return None
    with entry.lock:
        entry.ticketed = True
        return Ticket(entry.released, entry.position, entry.generation)


_held: list[tuple[StorageWeakRef, Ticket]] = []
_held_lock = threading.Lock()


def received(tensors: Sequence[torch.Tensor], tickets: Sequence[Ticket | None]) -> None:
    """Note a received batch's tickets; report those of earlier batches let go of."""
    with _held_lock:
        held = []
        for weak, earlier in _held:
            if weak.expired():
                earlier.released[earlier.position] = earlier.generation
            else:
                held.append((weak, earlier))
        for tensor, new in zip(tensors, tickets, strict=True):
            if new is not None:
                held.append((StorageWeakRef(tensor.untyped_storage()), new))
        _held[:] = held
