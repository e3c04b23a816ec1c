"""Which internal tiles of a raster a set of windows reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from geoxr.grid._window import Window

__all__ = ["TileLayout", "windows_share_tiles"]


class TileLayout(NamedTuple):
    """A raster's internal tiles as its pixel grid sees them.

    ``shape`` is a tile's ``(rows, cols)``; ``offset`` is where the grid's pixel
    ``(0, 0)`` lies in the file (a bbox crop), so tile edges fall on multiples of
    ``shape`` after adding it.
    """

    shape: tuple[int, int]
    offset: tuple[int, int] = (0, 0)


def windows_share_tiles(windows: Sequence[Window], layout: TileLayout, extent: Window) -> bool:
    """Whether any tile is read by two of ``windows`` (parts outside ``extent`` read none).

    Examples
    --------
    >>> tiles = TileLayout((256, 256))
    >>> extent = Window(0, 0, 1000, 1000)
    >>> windows_share_tiles([Window(0, 0, 256, 256), Window(0, 256, 256, 256)], tiles, extent)
    False
    >>> windows_share_tiles([Window(0, 0, 128, 128), Window(0, 128, 128, 128)], tiles, extent)
    True
    """
    if not windows:
        return False
    box = np.array([(w.ymin, w.xmin, w.ymax, w.xmax) for w in windows], np.int64)
    lo = np.maximum(box[:, :2], [extent.ymin, extent.xmin])
    hi = np.minimum(box[:, 2:], [extent.ymax, extent.xmax])
    inside = (hi > lo).all(axis=1)
    lo, hi = lo[inside] + layout.offset, hi[inside] + layout.offset
    first, last = lo // layout.shape, (hi - 1) // layout.shape
    counts = last - first + 1
    columns = int(last[:, 1].max(initial=0)) + 1
    touched = [
        ((first[:, 0] + dy) * columns + first[:, 1] + dx)[
            (dy < counts[:, 0]) & (dx < counts[:, 1])
        ]
        for dy in range(int(counts[:, 0].max(initial=0)))
        for dx in range(int(counts[:, 1].max(initial=0)))
    ]
    ids = np.concatenate(touched) if touched else np.empty(0, np.int64)
    return len(np.unique(ids)) < len(ids)
