"""The raster transformer interface and its lazy, block-wise application to a DataArray."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import dask.array as da
import numpy as np
import xarray as xr

from geoxr.grid import Grid

__all__ = [
    "RasterTransformer",
    "apply_transformers",
    "checked_transformers",
    "fill_masked",
    "mask_of",
    "output_nodata",
]


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

    def out_bands(self, in_bands: int) -> int:
        """The number of bands :meth:`transform` returns (default: unchanged)."""
        return in_bands

    def check_bands(self, in_bands: int, *, label: str) -> None:
        """Raise :class:`~geoxr.BandCountError` if this transformer cannot take ``in_bands``.

        ``label`` names the source in the message. Default: any band count.
        """
        return None

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def checked_transformers(
    transformers: Iterable[RasterTransformer], bands: int, *, label: str
) -> tuple[RasterTransformer, ...]:
    """``transformers`` as a tuple, each checked against the bands it will be given."""
    chain = tuple(transformers)  # a generator too: checked, then kept
    for transformer in chain:
        transformer.check_bands(bands, label=label)
        bands = transformer.out_bands(bands)
    return chain


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


def output_nodata(dtype: np.dtype, nodata: float | None) -> float | None:
    """The nodata value of lazy data of ``dtype``: None for floats (NaN marks it), else ``nodata``.

    An integer dtype that cannot hold ``nodata`` (say -99999 after a cast to uint8)
    uses its largest value (smallest for signed types) instead.

    Examples
    --------
    >>> output_nodata(np.dtype("uint8"), -99999.0), output_nodata(np.dtype("float32"), -99999.0)
    (255, None)
    >>> output_nodata(np.dtype("uint8"), float("nan")) is None
    True
    """
    if np.issubdtype(dtype, np.floating) or nodata is None or np.isnan(nodata):
        return None  # NaN: no nodata (no integer is NaN)
    info = np.iinfo(dtype)
    if float(nodata).is_integer() and info.min <= nodata <= info.max:
        return nodata
    return int(info.max if info.min == 0 else info.min)


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
    dtype, bands = np.dtype(data.dtype), data.sizes["band"]
    for transformer in transformers:
        dtype, bands = transformer.out_dtype(dtype), transformer.out_bands(bands)
    out_nodata = output_nodata(dtype, nodata)
    arr = data.data if isinstance(data.data, da.Array) else da.from_array(data.data)
    arr = arr.rechunk({0: -1})
    out = arr.map_blocks(
        _transform_block,
        transformers,
        nodata,
        out_nodata,
        chunks=((bands,), *arr.chunks[1:]),
        dtype=dtype,
        meta=np.array((), dtype),
    )
    if bands == data.sizes["band"]:
        result = data.copy(data=out)
    else:
        grid = Grid.from_dataarray(data)
        result = grid.wrap(out, name=str(data.name), coords={"band": np.arange(1, bands + 1)})
    result.rio.write_nodata(
        np.nan if out_nodata is None and dtype.kind == "f" else out_nodata,
        encoded=False,
        inplace=True,
    )
    return result
