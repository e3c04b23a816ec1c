"""rasterio's array features (rasterize, masks, polygons), one call at a time per process.

Each of these wraps its numpy array in a GDAL in-memory dataset, whose
construction silences warnings with ``warnings.catch_warnings()``. That swaps the
process-wide filter list, so two threads doing it at once restore each other's
lists: a warning of one thread escapes (a spurious ``NotGeoreferencedWarning:
Dataset has no geotransform``), and the thread that leaves last may restore a
list holding the other's ``ignore``, after which every warning of the process is
silenced, geoxr's own included. geoxr calls them from reader threads and dask
tasks, so it calls them through this lock. A process forked while one of its
threads held the lock (a DataLoader worker started during a read-ahead) gets a
new one, not a lock nobody will release.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from rasterio import features

from geoxr._fork_safe_lock import ForkSafeLock

__all__ = ["geometry_mask", "rasterize", "shapes"]

_lock = ForkSafeLock()


def rasterize(shapes: Iterable[Any], **kwargs: Any) -> np.ndarray:
    """:func:`rasterio.features.rasterize`, one call at a time in this process.

    Examples
    --------
    >>> import shapely
    >>> rasterize([(shapely.box(0, 0, 2, 1), 7)], out_shape=(2, 3)).tolist()
    [[7, 7, 0], [0, 0, 0]]
    """
    with _lock:
        return features.rasterize(shapes, **kwargs)


def geometry_mask(geometries: Iterable[Any], out_shape: tuple[int, int], transform: Any) -> Any:
    """:func:`rasterio.features.geometry_mask`, one call at a time in this process."""
    with _lock:
        return features.geometry_mask(geometries, out_shape, transform)


def shapes(source: np.ndarray, **kwargs: Any) -> list[tuple[dict[str, Any], Any]]:
    """:func:`rasterio.features.shapes`, read to the end under the lock.

    Examples
    --------
    >>> [value for _, value in shapes(np.array([[1, 1], [0, 2]], np.uint8))]
    [1.0, 0.0, 2.0]
    """
    with _lock:
        return list(features.shapes(source, **kwargs))
