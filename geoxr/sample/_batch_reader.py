"""Parallel, read-ahead fetching of dataset items in threads (GDAL and numpy drop the GIL)."""

from __future__ import annotations

import os
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from operator import itemgetter
from typing import Generic, ParamSpec, TypeVar

from torch.utils.data import get_worker_info

from geoxr.sample._batch import BatchBuffers, Slot
from geoxr.sample._buffer_pool import BufferPool
from geoxr.sample._inherited_memory import give_back_inherited_free_memory

__all__ = ["BatchReader", "WeakBound", "lane_bounds", "split_by_place"]

#: Items whose places are sampled for the lanes' bands (see :func:`lane_bounds`).
_BOUNDS_SAMPLE = 4096

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
#: Where item ``i`` lies, as a sortable tuple (for windows: column, then row).
Place = Callable[[int], tuple[int, ...]]


def lane_bounds(places: Sequence[tuple[int, ...]], lanes: int) -> list[tuple[int, ...]]:
    """The places that cut ``places`` into ``lanes`` bands of near-equal counts.

    Examples
    --------
    >>> lane_bounds([(c,) for c in range(100)], 4)
    [(25,), (50,), (75,)]
    >>> lane_bounds([], 2)
    []
    """
    ordered = sorted(places)
    if not ordered:
        return []
    return [ordered[len(ordered) * lane // lanes] for lane in range(1, lanes)]


def split_by_place(
    indices: Iterable[int],
    place: Place,
    lanes: int,
    bounds: Sequence[tuple[int, ...]] | None = None,
) -> list[list[int]]:
    """``indices`` in ``lanes`` near-equal runs of neighbouring places.

    The indices are ordered by ``place`` (for windows: their column, then row) and
    cut into consecutive runs, so each run covers one band of the scene. Given
    ``bounds`` (where the bands of the whole plan begin, see :func:`lane_bounds`), a
    cut moves towards its bound by up to a quarter of a run, so a lane keeps to
    the same part of the scene from batch to batch (and finds the tiles it decoded
    for earlier batches in its GDAL cache).

    Examples
    --------
    >>> split_by_place([0, 1, 2, 3, 4], lambda i: (-i,), 2)
    [[4, 3, 2], [1, 0]]
    >>> split_by_place(range(8), lambda i: (i,), 2, bounds=[(7,)])
    [[0, 1, 2, 3, 4], [5, 6, 7]]
    """
    placed = sorted(((place(i), i) for i in indices), key=itemgetter(0))
    ordered = [i for _, i in placed]
    size, extra = divmod(len(ordered), lanes)
    cuts = [lane * size + min(lane, extra) for lane in range(1, lanes)]
    if bounds:
        slack = size // 4
        places = [p for p, _ in placed]
        cuts = [
            min(max(bisect_left(places, bound), cut - slack), cut + slack)
            for bound, cut in zip(bounds, cuts, strict=True)
        ]
    return [ordered[a:b] for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True)]


class WeakBound(Generic[P, R]):
    """A bound method that does not keep its object alive, for the object's own reader.

    A dataset owns its :class:`BatchReader` and hands it its methods. Held as they
    are, they would make a reference cycle: a dropped dataset, its reader threads and
    their GDAL handles (with every tile they decoded) would live on until the
    garbage collector found the cycle. It does not pickle: a copy of the object
    makes a reader of its own.

    Examples
    --------
    >>> class Owner:
    ...     def twice(self, x):
    ...         return 2 * x
    >>> owner = Owner()
    >>> twice = WeakBound(owner.twice)
    >>> twice(21)
    42
    >>> del owner  # nothing else holds it: collected at once, no cycle
    >>> twice(21)
    Traceback (most recent call last):
    ...
    ReferenceError: the object whose method this is was collected
    """

    def __init__(self, method: Callable[P, R]) -> None:
        self._method: weakref.WeakMethod[Callable[P, R]] = weakref.WeakMethod(method)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        method = self._method()
        if method is None:
            raise ReferenceError("the object whose method this is was collected")
        return method(*args, **kwargs)


class BatchReader(Generic[T]):
    """Loads the items of a batch in reader threads, and reads the next batch ahead.

    ``load(index, slot)`` loads one item; ``slot`` is its place in the batch
    being fetched, whose tensors it may write the item into (see
    :class:`~geoxr.sample._batch.BatchBuffers`).

    Each reader thread is a *lane* with a queue of its own, and gets one run of
    each batch's items as one task (per-item tasks cost the caller a wake-up per
    item: 7% of the chips a second through a DataLoader). Each lane keeps its own
    GDAL handles, and GDAL caches decoded tiles per handle. Given ``place`` (where
    in the scene an item lies), the items of a batch are ordered by place and each
    lane gets one band of them, the left-most to the first lane, and so on; each
    lane keeps near one band of the whole plan (its bounds are sampled from up to
    4096 items), so from batch to batch it reads the same part of the scene. A
    tile shared by overlapping windows (random windows touch up to four tiles
    each) is then mostly decoded once, in the lane that owns its part of the
    scene, instead of once per thread. Without ``place`` the lanes take
    consecutive runs of the batch.

    When a batch is a run of consecutive indices (a sequential sampler: prediction,
    validation, benchmarks), the batch this process will be asked for next is
    submitted right away (in a DataLoader worker: the run ``num_workers`` batches
    on), so its reads overlap the caller's collation and model step. Any other
    order is served as asked, without read-ahead. Results never depend on the
    lanes or the read-ahead: they only move where and when items are loaded.

    The lanes live in one process: after a fork (DataLoader workers) new ones are
    made, as many as the worker's share of the cores. So does the
    :class:`~geoxr.sample._buffer_pool.BufferPool` batches are written into,
    unless ``reuse_memory`` is False (every batch in fresh memory). A DataLoader
    worker first gives back the free memory it inherited, then runs
    ``on_worker_start`` (set-up of its own, once per worker).
    """

    def __init__(
        self,
        load: Callable[[int, Slot], T],
        length: Callable[[], int],
        place: Place | None = None,
        *,
        reuse_memory: bool = True,
        on_worker_start: Callable[[], None] | None = None,
    ) -> None:
        self.load = load
        self.length = length
        self.place = place
        self.reuse_memory = reuse_memory
        self.on_worker_start = on_worker_start
        self._lanes: list[ThreadPoolExecutor] = []
        self._bounds: list[tuple[int, ...]] = []
        self._pid: int | None = None
        self._ahead: dict[int, _Ref[T]] = {}
        self._processes = 1
        self._pool: BufferPool | None = None

    def _reader_lanes(self) -> list[ThreadPoolExecutor]:
        if not self._lanes or self._pid != os.getpid():
            worker = get_worker_info()
            self._processes = 1 if worker is None else worker.num_workers
            if worker is not None:
                give_back_inherited_free_memory()
                if self.on_worker_start is not None:
                    self.on_worker_start()
            threads = max(1, min(4, (os.cpu_count() or 1) // self._processes))
            self._lanes = [ThreadPoolExecutor(max_workers=1) for _ in range(threads)]
            if self.place is not None:
                n = self.length()
                sample = range(0, n, max(1, n // _BOUNDS_SAMPLE))
                self._bounds = lane_bounds([self.place(i) for i in sample], threads)
            self._pid = os.getpid()
            self._ahead = {}
            self._pool = BufferPool() if self.reuse_memory else None
        return self._lanes

    def start(self) -> None:
        """Set this process up (lanes, pool; in a worker, its set-up), once per process."""
        self._reader_lanes()

    def _submit(self, indices: Sequence[int]) -> list[_Ref[T]]:
        """Load ``indices`` as one batch; for each position, its run's future and place in it.

        Every position has a slot of its own, a repeated index too (a sampler drawing
        with replacement): no two lanes write one slot.
        """
        lanes = self._reader_lanes()
        place = self.place

        def where(k: int) -> tuple[int, ...]:
            return (indices[k],) if place is None else place(indices[k])

        runs = split_by_place(range(len(indices)), where, len(lanes), self._bounds)
        batch = BatchBuffers(len(indices), self._pool)
        refs: list[_Ref[T]] = [None] * len(indices)  # type: ignore[list-item]
        for lane, run in zip(lanes, runs, strict=True):
            items = [indices[k] for k in run]
            future = lane.submit(self._load_run, items, [Slot(batch, k) for k in run])
            for j, k in enumerate(run):
                refs[k] = (future, j)
        return refs

    def _load_run(self, items: list[int], slots: list[Slot]) -> list[T | _Failed]:
        """Load a lane's share of a batch: one task, one wake-up of the caller.

        An item that fails is kept as its error, raised only if it is asked for (a
        read-ahead guess may never be).
        """
        loaded: list[T | _Failed] = []
        for i, slot in zip(items, slots, strict=True):
            try:
                loaded.append(self.load(i, slot))
            except Exception as exc:
                loaded.append(_Failed(exc))
        return loaded

    def fetch(self, indices: Sequence[int]) -> list[T]:
        """The items of ``indices``, in order."""
        self._reader_lanes()  # after a fork, drops the parent's read-ahead before it is used
        ahead, self._ahead = self._ahead, {}  # anything not asked for now was a wrong guess
        refs = [ahead.pop(i, None) for i in indices]  # a repeated index is loaded again
        missing = [k for k, ref in enumerate(refs) if ref is None]
        for k, ref in zip(missing, self._submit([indices[k] for k in missing]), strict=True):
            refs[k] = ref
        n = len(indices)
        if n and list(indices) == list(range(indices[0], indices[0] + n)):
            start = indices[0] + n * self._processes
            upcoming = range(start, min(start + n, self.length()))
            self._ahead = dict(zip(upcoming, self._submit(upcoming), strict=True))
        return [_result(ref) for ref in refs]  # type: ignore[arg-type]


class _Failed:
    """An item's error, kept until the item is asked for."""

    def __init__(self, error: Exception) -> None:
        self.error = error


#: Where an item is: the future of its lane's run, and its place in the run.
_Ref = tuple[Future[list["T | _Failed"]], int]


def _result(ref: _Ref[T]) -> T:
    future, j = ref
    item = future.result()[j]
    if isinstance(item, _Failed):
        raise item.error
    return item
