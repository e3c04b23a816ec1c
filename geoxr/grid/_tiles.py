"""Which internal tiles of a raster a set of windows reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from geoxr.grid._window import Window

__all__ = ["TileLayout", "windows_share_tiles"]

#: Largest tile grid :func:`windows_share_tiles` counts on (cells); past it, tiles
#: are so small for the scene that windows are taken to share them.
MAX_TILE_GRID_CELLS = 4 * 2**20


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

    Counts how many windows read each tile, on the grid of tiles (memory grows with
    the number of tiles, not of windows); a grid of more than
    :data:`MAX_TILE_GRID_CELLS` tiles counts as shared.

    Examples
    --------
    >>> tiles = TileLayout((256, 256))
    >>> extent = Window(0, 0, 1000, 1000)
    >>> windows_share_tiles([Window(0, 0, 256, 256), Window(0, 256, 256, 256)], tiles, extent)
    False
    >>> windows_share_tiles([Window(0, 0, 128, 128), Window(0, 128, 128, 128)], tiles, extent)
    True
    """
    shape, offset = np.asarray(layout.shape), np.asarray(layout.offset)
    rows, cols = (np.array([extent.ymax, extent.xmax]) + offset - 1) // shape + 1
    if rows * cols > MAX_TILE_GRID_CELLS:
        return True
    box = np.array([(w.ymin, w.xmin, w.ymax, w.xmax) for w in windows], np.int64).reshape(-1, 4)
    lo = np.maximum(box[:, :2], [extent.ymin, extent.xmin])
    hi = np.minimum(box[:, 2:], [extent.ymax, extent.xmax])
    inside = (hi > lo).all(axis=1)
    first = (lo[inside] + offset) // shape
    end = (hi[inside] - 1 + offset) // shape + 1  # one past the last tile read
    # Windows per tile: +1/-1 at the corners of each window's block of tiles, summed.
    counts = np.zeros((rows + 1, cols + 1), np.int32)
    for (r, c), sign in (
        ((first, first), 1),
        ((first, end), -1),
        ((end, first), -1),
        ((end, end), 1),
    ):
        np.add.at(counts, (r[:, 0], c[:, 1]), sign)
    return bool(counts.cumsum(axis=0).cumsum(axis=1).max(initial=0) > 1)
