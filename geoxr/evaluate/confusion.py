"""Confusion matrix of two class-id rasters as a dask reduction (one task per block)."""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["confusion_matrix_lazy"]


def _block_counts(
    truth: np.ndarray, pred: np.ndarray, n: int, ignore: tuple[int, ...]
) -> np.ndarray:
    keep = (truth >= 0) & (truth < n) & (pred >= 0) & (pred < n)
    for value in ignore:
        keep &= (truth != value) & (pred != value)
    index = truth[keep].astype(np.int64) * n + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=n * n).reshape(1, 1, n * n)


def confusion_matrix_lazy(
    truth: xr.DataArray, prediction: xr.DataArray, num_classes: int, *, ignore: Sequence[int] = ()
) -> da.Array:
    """Lazy ``(num_classes, num_classes)`` counts, rows = truth, columns = prediction.

    Pixels whose truth or prediction is in ``ignore`` (null, nodata) are left out.

    Examples
    --------
    >>> t = xr.DataArray(np.array([[0, 1], [1, 2]]), dims=("y", "x")).chunk(1)
    >>> p = xr.DataArray(np.array([[0, 1], [0, 2]]), dims=("y", "x")).chunk(1)
    >>> confusion_matrix_lazy(t, p, 3, ignore=[2]).compute()
    array([[1, 0, 0],
           [1, 1, 0],
           [0, 0, 0]])
    """
    t = truth.data if isinstance(truth.data, da.Array) else da.from_array(truth.data)
    p = (
        prediction.data
        if isinstance(prediction.data, da.Array)
        else da.from_array(prediction.data)
    )
    p = p.rechunk(t.chunks)
    n = num_classes
    counts = da.map_blocks(
        _block_counts,
        t,
        p,
        n,
        tuple(ignore),
        new_axis=2,
        chunks=((1,) * len(t.chunks[0]), (1,) * len(t.chunks[1]), (n * n,)),
        dtype=np.int64,
    )
    return counts.sum(axis=(0, 1)).reshape(n, n)
