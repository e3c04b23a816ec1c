"""Batches assembled in place: each sample is read straight into its slot of the batch.

A DataLoader collates a batch by stacking its samples: one more copy of every
pixel, in the main process (with ``num_workers=0``) where torch spreads the copy
over its OpenMP threads, which then spin beside the reader threads. Here the
reader threads write each sample into its slot of batch tensors allocated once
per batch (from a :class:`~geoxr.sample._buffer_pool.BufferPool`: in shared
memory inside a DataLoader worker, where the batch is sent from), and collating
samples that fill their batch's slots in order hands those tensors over without
a copy. Anything else is stacked as usual.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch.utils.data import get_worker_info
from torch.utils.data._utils.collate import collate, default_collate_fn_map

from geoxr.sample._buffer_pool import BufferPool, Ticket, received, ticket

__all__ = ["BatchBuffers", "Chip", "Slot", "collate_chips", "stacked"]

#: A slot's tensors: (shape, dtype) of each.
Layout = tuple[tuple[tuple[int, ...], torch.dtype], ...]


class Chip(NamedTuple):
    """A dataset item: a float32 ``(C, H, W)`` image and its ``(H, W)`` int64 mask."""

    image: torch.Tensor
    mask: torch.Tensor


class _SentChip(Chip):
    """A collated batch in a DataLoader worker: pickled with its storages' tickets."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _received_chip, (tuple(self), tuple(ticket(field) for field in self))

    # Copies stay in the worker: plain chips, no tickets.
    def __copy__(self) -> Chip:
        return Chip(*self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Chip:
        return Chip(*(copy.deepcopy(field, memo) for field in self))


def _received_chip(fields: tuple[torch.Tensor, ...], tickets: tuple[Ticket | None, ...]) -> Chip:
    received(fields, tickets)
    return Chip(*fields)


class BatchBuffers:
    """The tensors of one batch of ``size`` samples, allocated by the first claim.

    They come from ``pool`` where one is given, else they are allocated fresh.
    """

    def __init__(self, size: int, pool: BufferPool | None = None) -> None:
        self.size = size
        self.pool = pool
        self._lock = threading.Lock()
        self._layout: Layout | None = None
        self._tensors: list[torch.Tensor] = []

    def claim(self, position: int, layout: Layout) -> list[torch.Tensor] | None:
        """Views of slot ``position``, or ``None`` if the batch holds another layout."""
        with self._lock:
            if self._layout is None:
                self._layout = layout
                self._tensors = [self._allocate((self.size, *s), dtype) for s, dtype in layout]
            elif layout != self._layout:
                return None
        return [tensor[position] for tensor in self._tensors]

    def _allocate(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return (
            torch.empty(shape, dtype=dtype) if self.pool is None else self.pool.empty(shape, dtype)
        )


@dataclass(frozen=True)
class Slot:
    """Where in which batch one sample goes."""

    buffers: BatchBuffers
    position: int

    def claim(self, *layout: tuple[tuple[int, ...], torch.dtype]) -> list[torch.Tensor] | None:
        """Tensors of ``layout`` to write the sample into (``None``: use your own)."""
        return self.buffers.claim(self.position, layout)


def stacked(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The tensor whose consecutive slots ``tensors`` are, whole, or ``None``.

    Examples
    --------
    >>> batch = torch.arange(6.0).reshape(3, 2)
    >>> stacked([batch[0], batch[1], batch[2]]).data_ptr() == batch.data_ptr()
    True
    >>> stacked([batch[0], batch[2]]) is None
    True
    """
    first = tensors[0]
    storage, numel = first.untyped_storage(), first.numel()
    if storage.nbytes() != len(tensors) * numel * first.element_size():
        return None
    for k, tensor in enumerate(tensors):
        if (
            tensor.untyped_storage().data_ptr() != storage.data_ptr()
            or tensor.storage_offset() != k * numel
            or tensor.shape != first.shape
            or tensor.dtype != first.dtype
            or not tensor.is_contiguous()
        ):
            return None
    return first.new_empty(0).set_(storage).view(len(tensors), *first.shape)


def collate_chips(
    batch: Sequence[Chip],
    *,
    collate_fn_map: dict[type | tuple[type, ...], Callable[..., Any]] | None = None,
) -> Chip:
    """``default_collate`` for :class:`Chip`: the batch's own tensors where it fills them."""
    collate_fn_map = collate_fn_map or default_collate_fn_map
    fields = []
    for samples in zip(*batch, strict=True):
        whole = stacked(samples)
        fields.append(
            collate(list(samples), collate_fn_map=collate_fn_map) if whole is None else whole
        )
    return Chip(*fields) if get_worker_info() is None else _SentChip(*fields)


# torch's documented way to teach default_collate a type of its own.
default_collate_fn_map[Chip] = collate_chips
