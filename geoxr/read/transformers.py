"""Raster transformers: the same change on a chip and, lazily, on a whole DataArray."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr

__all__ = ["CastTransformer", "RasterTransformer", "apply_transformers", "fill_masked", "mask_of"]


def mask_of(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """Per-band invalid mask: ``nodata`` values, and NaN for floats. 0 is data unless declared.

    Examples
    --------
    >>> mask_of(np.array([0.0, np.nan, -9.0]), -9.0)
    array([False,  True,  True])
    """
    invalid = np.zeros(values.shape, bool) if nodata is None else values == nodata
    if np.issubdtype(values.dtype, np.floating):
        invalid |= np.isnan(values)
    return invalid


def fill_masked(chip: np.ma.MaskedArray, nodata: float | None) -> np.ndarray:
    """Plain values of a masked chip: NaN for floats, ``nodata`` (else 0) for integers."""
    if np.issubdtype(chip.dtype, np.floating):
        return chip.filled(np.nan)
    return chip.filled(0 if nodata is None else nodata)


class RasterTransformer(ABC):
    """Base of raster transformers, as in Raster Vision.

    A transformer maps a masked chip ``(band, y, x)`` to a masked chip of the same
    spatial shape. Raster sources apply it to every chip they read and, block by
    block, to their lazy ``.data``, so both give identical values.
    """

    @abstractmethod
    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Transform one masked chip ``(band, y, x)``."""

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """The dtype :meth:`transform` returns for an input dtype (default: unchanged)."""
        return np.dtype(in_dtype)


class CastTransformer(RasterTransformer):
    """Cast chips to another dtype; masked pixels stay masked.

    Examples
    --------
    >>> chip = np.ma.MaskedArray(np.array([[[1.7, 300.0]]]), mask=[[[False, True]]])
    >>> out = CastTransformer("uint8").transform(chip)
    >>> out.dtype, out.filled(0).tolist(), out.mask.tolist()
    (dtype('uint8'), [[[1, 0]]], [[[False, True]]])
    """

    def __init__(self, to_dtype: npt.DTypeLike) -> None:
        self.to_dtype = np.dtype(to_dtype)

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Cast the values; masked values become 0 first so they cannot overflow."""
        values = chip.filled(0).astype(self.to_dtype)
        return np.ma.MaskedArray(values, mask=np.ma.getmaskarray(chip))

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """The target dtype."""
        return self.to_dtype


def _transform_block(
    block: np.ndarray,
    transformers: Sequence[RasterTransformer],
    nodata: float | None,
    out_nodata: float | None,
) -> np.ndarray:
    chip = np.ma.MaskedArray(block, mask=mask_of(block, nodata))
    for transformer in transformers:
        chip = transformer.transform(chip)
    return fill_masked(chip, out_nodata)


def apply_transformers(
    data: xr.DataArray,
    transformers: Sequence[RasterTransformer],
    *,
    nodata: float | None,
) -> xr.DataArray:
    """Apply transformers lazily, one dask task per block (whole band axis per block).

    Invalid pixels come back as NaN for floats and as ``nodata`` (else 0) for integers.
    """
    if not transformers:
        return data
    dtype = np.dtype(data.dtype)
    for transformer in transformers:
        dtype = transformer.out_dtype(dtype)
    out_nodata = None if np.issubdtype(dtype, np.floating) else nodata
    if out_nodata is not None and np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not (float(out_nodata).is_integer() and info.min <= out_nodata <= info.max):
            # The source nodata does not fit the cast dtype (e.g. -99999 -> uint8).
            out_nodata = info.max if info.min == 0 else info.min
    arr = data.data if isinstance(data.data, da.Array) else da.from_array(data.data)
    arr = arr.rechunk({0: -1})
    out = arr.map_blocks(
        _transform_block, transformers, nodata, out_nodata, dtype=dtype, meta=np.array((), dtype)
    )
    result = data.copy(data=out)
    result.rio.write_nodata(
        np.nan if out_nodata is None and dtype.kind == "f" else out_nodata,
        encoded=False,
        inplace=True,
    )
    return result
