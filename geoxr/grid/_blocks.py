"""Dask blocks of a scene as windows: the block layout and the block a task computes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geoxr.grid._window import Window

__all__ = ["block_chunks", "block_windows", "window_of_block"]


def block_chunks(length: int, block: int) -> tuple[int, ...]:
    """Chunk sizes of one axis: whole ``block``s, then the remainder.

    Examples
    --------
    >>> block_chunks(10, 4)
    (4, 4, 2)
    """
    full, rest = divmod(length, block)
    return (block,) * full + ((rest,) if rest else ())


def block_windows(chunks: Sequence[Sequence[int]]) -> list[tuple[tuple[int, int], Window]]:
    """``((row, col) block index, window)`` of every block of ``(y, x)`` chunks, row-major.

    ``chunks`` are the last two entries of a dask ``.chunks``: row sizes, column sizes.

    Examples
    --------
    >>> block_windows(((2, 1), (3,)))
    [((0, 0), Window(row_off=0, col_off=0, height=2, width=3)), ((1, 0), Window(row_off=2, col_off=0, height=1, width=3))]
    """
    rows, cols = (np.cumsum((0, *c)).tolist() for c in chunks[-2:])
    return [
        ((i, j), Window(rows[i], cols[j], rows[i + 1] - rows[i], cols[j + 1] - cols[j]))
        for i, j in itertools.product(range(len(rows) - 1), range(len(cols) - 1))
    ]


def window_of_block(block_info: Mapping[Any, Any] | None, arg: int | None = None) -> Window:
    """The ``(y, x)`` window of the block a ``dask.array.map_blocks`` function computes.

    ``arg`` picks the input whose block it is (by position); by default the output's.

    Examples
    --------
    >>> window_of_block({None: {"array-location": [(0, 3), (10, 20), (5, 9)]}})
    Window(row_off=10, col_off=5, height=10, width=4)
    """
    if block_info is None:
        raise ValueError("window_of_block needs the block_info dask passes to map_blocks.")
    (r0, r1), (c0, c1) = block_info[arg]["array-location"][-2:]
    return Window(r0, c0, r1 - r0, c1 - c0)
