"""Helpers for tests of code built on geoxr: tiny georeferenced data and laziness checks.

Public on purpose, like ``odc.geo.testutils``: downstream projects may use them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import dask
import numpy as np
import numpy.typing as npt
import xarray as xr
from affine import Affine

from geoxr.grid import Grid, Window

__all__ = [
    "ComputeCounter",
    "assert_same_grid",
    "coverage_count",
    "make_raster",
    "raise_if_dask_computes",
]


def make_raster(
    shape: tuple[int, int, int],
    *,
    dtype: npt.DTypeLike = "float32",
    nodata: float | None = None,
    crs: str | int = 32616,
    transform: Affine | None = None,
    chunks: dict[str, int] | None = None,
    seed: int = 0,
) -> xr.DataArray:
    """A small random ``(band, y, x)`` DataArray with CRS, transform and nodata.

    Examples
    --------
    >>> r = make_raster((3, 4, 5), dtype="uint8")
    >>> r.dims, r.shape, r.rio.crs.to_epsg()
    (('band', 'y', 'x'), (3, 4, 5), 32616)
    """
    rng = np.random.default_rng(seed)
    values = (rng.random(shape) * 200 + 1).astype(dtype)
    transform = transform or Affine(0.5, 0, 733601.0, 0, -0.5, 3725139.0)
    grid = Grid(_crs(crs), transform, (shape[1], shape[2]))
    data = grid.wrap(values, coords={"band": np.arange(1, shape[0] + 1)})
    data = data.rio.write_nodata(nodata, encoded=False)
    return data.chunk(chunks) if chunks else data


def _crs(crs: str | int) -> object:
    from rasterio.crs import CRS

    return CRS.from_epsg(crs) if isinstance(crs, int) else CRS.from_user_input(crs)


def coverage_count(shape: tuple[int, int], windows: Iterable[Window]) -> np.ndarray:
    """How many windows cover each pixel of a ``shape`` scene (windows clipped to it).

    Examples
    --------
    >>> coverage_count((2, 3), [Window(0, 0, 2, 2), Window(0, 1, 2, 2)]).tolist()
    [[1, 2, 1], [1, 2, 1]]
    """
    counts = np.zeros(shape, np.int32)
    scene = Window(0, 0, *shape)
    for window in windows:
        inner = window.intersection(scene)
        if inner is not None:
            counts[inner.slices] += 1
    return counts


def assert_same_grid(a: xr.DataArray, b: xr.DataArray) -> None:
    """Assert two DataArrays share CRS, transform and ``(y, x)`` shape."""
    ga, gb = Grid.from_dataarray(a), Grid.from_dataarray(b)
    assert ga.crs == gb.crs, f"CRS differ: {ga.crs} != {gb.crs}"
    assert ga.shape == gb.shape, f"shapes differ: {ga.shape} != {gb.shape}"
    assert ga.transform.almost_equals(gb.transform), f"{ga.transform} != {gb.transform}"


class ComputeCounter:
    """A dask scheduler that counts computes and refuses more than ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.max_computes = max_computes
        self.count = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """Count this compute, then run it synchronously."""
        self.count += 1
        if self.count > self.max_computes:
            raise RuntimeError(
                f"Too many dask computes: {self.count} > {self.max_computes} allowed."
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[ComputeCounter]:
    """Within the block, any dask compute beyond ``max_computes`` raises ``RuntimeError``.

    Examples
    --------
    >>> r = make_raster((1, 4, 4), chunks={"x": 2})
    >>> with raise_if_dask_computes():
    ...     lazy = r + 1
    """
    counter = ComputeCounter(max_computes)
    with dask.config.set(scheduler=counter):
        yield counter
