"""Parallel, read-ahead fetching of dataset items in threads (GDAL and numpy drop the GIL)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from torch.utils.data import get_worker_info

__all__ = ["BatchReader"]

T = TypeVar("T")


class BatchReader(Generic[T]):
    """Loads the items of a batch in a thread pool, and reads the next batch ahead.

    When a batch is a run of consecutive indices (a sequential sampler: prediction,
    validation, benchmarks), the batch this process will be asked for next is
    submitted right away (in a DataLoader worker: the run ``num_workers`` batches
    on), so its reads overlap the caller's collation and model step. Any other
    order is served as asked, without read-ahead. Results never depend on the
    read-ahead: it only moves when items are loaded.

    The pool lives in one process: after a fork (DataLoader workers) a new one is
    made, sized to the worker's share of the cores.
    """

    def __init__(self, load: Callable[[int], T], length: Callable[[], int]) -> None:
        self.load = load
        self.length = length
        self._pool: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._ahead: dict[int, Future[T]] = {}
        self._processes = 1

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            worker = get_worker_info()
            self._processes = 1 if worker is None else worker.num_workers
            threads = max(1, min(4, (os.cpu_count() or 1) // self._processes))
            self._pool = ThreadPoolExecutor(max_workers=threads)
            self._pid = os.getpid()
            self._ahead = {}
        return self._pool

    def fetch(self, indices: Sequence[int]) -> list[T]:
        """The items of ``indices``, in order."""
        pool = self._executor()
        futures = [
            self._ahead.pop(i) if i in self._ahead else pool.submit(self.load, i) for i in indices
        ]
        self._ahead.clear()  # anything not asked for now was a wrong guess
        n = len(indices)
        if n and list(indices) == list(range(indices[0], indices[0] + n)):
            start = indices[0] + n * self._processes
            stop = min(start + n, self.length())
            self._ahead = {i: pool.submit(self.load, i) for i in range(start, stop)}
        return [f.result() for f in futures]

    def __getstate__(self) -> dict[str, object]:
        # Threads and futures stay in their process; a copy starts with none.
        return {**self.__dict__, "_pool": None, "_pid": None, "_ahead": {}}
