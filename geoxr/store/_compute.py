"""Block tasks of the label writers: one dask graph, any subset, computed or streamed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.callbacks import Callback
from dask.delayed import Delayed

from geoxr._distributed import distributed_client
from geoxr.grid import Window, block_windows, window_of_block

__all__ = [
    "compute_blocks",
    "compute_tasks",
    "map_blocks_delayed",
    "stream_blocks",
]

BlockFunction = Callable[..., Any]


def _call_on_block(
    func: BlockFunction, names: Sequence[str], *values: np.ndarray, block_info: Any = None
) -> np.ndarray:
    """Run ``func`` on one block; its result boxed in a ``(1, ..., 1)`` object array."""
    location = block_info[None]["chunk-location"]
    block = tuple(location[-2:])
    window = window_of_block(block_info, arg=0)
    result = np.empty((1,) * len(location), object)
    result.flat[0] = func(dict(zip(names, values, strict=True)), window=window, block=block)
    return result


def map_blocks_delayed(
    func: BlockFunction, arrays: Mapping[str, da.Array], *, name: str | None = None
) -> dict[tuple[int, int], Delayed]:
    """``func({name: block}, window=..., block=(row, col))`` for every ``(y, x)`` block.

    One task per block in one graph (``dask.array.map_blocks``), handed out as one
    Delayed per block, so a caller can compute any subset of the blocks (a resumed
    write skips finished ones) while blocks the arrays share (scores and the class
    ids made from them) are computed once; :func:`compute_blocks` computes them and
    gives ``func``'s results. Building it walks the graph once, not once per block.
    Blocks follow the first array's ``(y, x)`` chunks (the others are rechunked to
    them); leading dimensions become one chunk. ``name`` names the tasks (default: a
    hash of the arguments).

    Examples
    --------
    >>> x = da.ones((3, 4, 6), chunks=(1, 2, 3))
    >>> tasks = map_blocks_delayed(lambda b, window, block: int(b["x"].sum()), {"x": x})
    >>> sorted(tasks)
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    >>> compute_blocks(tasks, progress=False, desc="sums")[1, 1]
    18
    """
    names = list(arrays)
    rows, cols = next(iter(arrays.values())).chunks[-2:]
    inputs = [
        a.rechunk({**{i: -1 for i in range(a.ndim - 2)}, a.ndim - 2: rows, a.ndim - 1: cols})
        for a in arrays.values()
    ]
    # Leading axes (one chunk each) stay in the output as length-1 axes: dropping them
    # would make dask concatenate, that is copy, every input block before the call.
    leading = max(a.ndim for a in inputs) - 2
    boxed = da.map_blocks(
        partial(_call_on_block, func, names),
        *inputs,
        chunks=((1,),) * leading + ((1,) * len(rows), (1,) * len(cols)),
        dtype=object,
        meta=np.empty((0,) * (leading + 2), object),
        name=name,
    )
    blocks = boxed.to_delayed().reshape(len(rows), len(cols))
    return {(i, j): blocks[i, j] for i in range(len(rows)) for j in range(len(cols))}


def compute_blocks(
    tasks: Mapping[tuple[int, int], Delayed], *, progress: bool, desc: str
) -> dict[tuple[int, int], Any]:
    """Compute block tasks of :func:`map_blocks_delayed`: ``{block: func's result}``."""
    boxed = compute_tasks(list(tasks.values()), progress=progress, desc=desc)
    return {block: box.item() for block, box in zip(tasks, boxed, strict=True)}


def stream_blocks(
    func: BlockFunction,
    arrays: Mapping[str, da.Array],
    consume: Callable[[Any, Window, tuple[int, int]], None],
    *,
    progress: bool,
    desc: str,
) -> None:
    """Hand ``func``'s result for every block to ``consume(result, window, block)`` here.

    Results are consumed as blocks finish and then dropped, so memory stays bounded
    by the blocks in flight, and the graph is built once (see
    :func:`map_blocks_delayed`). ``consume`` runs in this process, one call at a
    time, so it may write to a file handle opened here (a GDAL dataset): on dask's
    local threaded or synchronous scheduler it runs, under a lock, in the task that
    computed the block; with a ``dask.distributed`` Client the blocks are computed
    on the cluster and consumed here as they arrive. Once this returns or raises
    (a block failed), ``consume`` is not called again, so the caller may close
    its files.

    Examples
    --------
    >>> x = da.arange(24).reshape(4, 6).rechunk((2, 3))
    >>> out = np.zeros((4, 6), int)
    >>> def put(total, window, block):
    ...     out[window.slices] = total
    >>> stream_blocks(lambda b, window, block: b["x"].sum(), {"x": x}, put,
    ...               progress=False, desc="sums")
    >>> out[:, ::3].tolist()
    [[24, 42], [24, 42], [96, 114], [96, 114]]
    """
    client = distributed_client()
    if client is None:
        lock = threading.Lock()
        returned = False

        def compute_and_consume(
            blocks: dict[str, np.ndarray], *, window: Window, block: tuple[int, int]
        ) -> None:
            result = func(blocks, window=window, block=block)
            with lock:
                if not returned:
                    consume(result, window, block)

        tasks = map_blocks_delayed(
            compute_and_consume, arrays, name=f"geoxr-stream-{uuid.uuid4().hex}"
        )
        try:
            compute_tasks(list(tasks.values()), progress=progress, desc=desc)
        finally:
            # When a block fails, dask raises here while other blocks may still be
            # running: none may consume once this returns (the caller closes its files).
            with lock:
                returned = True
        return
    from distributed import as_completed
    from tqdm.auto import tqdm

    tasks = map_blocks_delayed(func, arrays)
    futures = client.compute(list(tasks.values()))
    block_of = {future.key: block for future, block in zip(futures, tasks, strict=True)}
    windows = dict(block_windows(next(iter(arrays.values())).chunks))
    with tqdm(total=len(futures), desc=desc, disable=not progress) as bar:
        for future, boxed in as_completed(futures, with_results=True):
            block = block_of[future.key]
            consume(boxed.item(), windows[block], block)
            future.release()
            bar.update()


def compute_tasks(tasks: Sequence[Delayed], *, progress: bool, desc: str) -> list[Any]:
    """Compute ``tasks`` on the active scheduler (a distributed Client if one is active).

    ``dask.compute`` already runs on an active Client; the Client is asked for
    directly only to show its progress bar, since tqdm's dask callback sees the
    local schedulers alone.
    """
    if not progress or not tasks:
        return list(dask.compute(*tasks))
    client = distributed_client()
    if client is not None:
        from distributed import progress as show_progress

        futures = client.compute(list(tasks))
        show_progress(futures, notebook=False)
        return list(client.gather(futures))
    from tqdm.auto import tqdm

    # Counted as the tasks asked for finish (tqdm's dask callback counts every task of
    # the graph: reads, predictions, class ids... "writing 25 blocks", 0/100).
    keys = {task.key for task in tasks}

    def count(key: Any, *_: Any) -> None:
        if key in keys:
            bar.update()

    with tqdm(total=len(keys), desc=desc, mininterval=1.0) as bar, Callback(posttask=count):
        results = list(dask.compute(*tasks))
        bar.update(bar.total - bar.n)  # tasks that were data already ran no task
        return results
