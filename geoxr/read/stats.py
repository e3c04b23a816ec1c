"""Band statistics as a dask reduction, and normalisation as pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import xarray as xr

from geoxr.errors import BandCountError, EmptyBandError
from geoxr.grid import Window, block_windows

if TYPE_CHECKING:
    from geoxr.read._base import RasterSource

__all__ = ["BandStats", "compute_band_stats", "model_input", "valid_pixels", "with_band_axis"]


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation of valid pixels.

    Examples
    --------
    >>> stats = BandStats(means=(10.0, 20.0), stds=(2.0, 4.0))
    >>> chip = np.array([[[12.0]], [[16.0]]])
    >>> stats.normalize(chip, valid=np.array([[True]])).ravel().tolist()
    [1.0, -1.0]
    >>> BandStats.from_dict(stats.to_dict()) == stats
    True
    """

    means: tuple[float, ...]
    stds: tuple[float, ...]

    def normalize(self, chip: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
        """``(chip - mean) / std`` per band (axis -3) as float32; invalid pixels become 0."""
        invalid = None if valid is None else ~np.asarray(valid, bool)
        return model_input(chip, self, invalid=invalid)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form."""
        return {"means": list(self.means), "stds": list(self.stds)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BandStats:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(float(v) for v in d["means"]), tuple(float(v) for v in d["stds"]))


def model_input(
    values: np.ndarray,
    stats: BandStats | None,
    *,
    invalid: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """What a model sees of a chip: float32, standardised per band, 0 at invalid pixels.

    The one place chips become model input, for training samples and for
    block-wise prediction alike.

    Parameters
    ----------
    values : numpy.ndarray
        ``(..., band, y, x)`` chip values of any dtype.
    stats : BandStats, optional
        Per-band mean and std; ``None`` keeps raw values (as float32).
    invalid : numpy.ndarray, optional
        ``(y, x)`` booleans: pixels set to 0 (assigned, so NaN nodata becomes 0 too).
    out : numpy.ndarray, optional
        float32 array of the same shape to write into (e.g. a slot of a batch);
        ``values`` itself where it is float32 (standardised in place).

    Examples
    --------
    >>> chip = np.array([[[12, 8]]], np.uint8)
    >>> model_input(chip, BandStats((10.0,), (2.0,)), invalid=np.array([[False, True]]))
    array([[[1., 0.]]], dtype=float32)
    """
    if out is None:
        out = np.empty(values.shape, np.float32)
    if values is not out:
        np.copyto(out, values, casting="unsafe")
    if stats is not None:
        if values.shape[-3] != len(stats.means):
            raise ValueError(
                f"Chip has {values.shape[-3]} bands but the stats have {len(stats.means)}; "
                "compute stats on the same bands (channel_order) as the chips."
            )
        out -= np.asarray(stats.means, np.float32).reshape(-1, 1, 1)
        out /= np.asarray(stats.stds, np.float32).reshape(-1, 1, 1)
    if invalid is not None:
        np.copyto(out, 0, where=invalid)  # ten times a boolean-index assignment
    return out


def valid_pixels(data: xr.DataArray, nodata: float | None = None) -> xr.DataArray:
    """Lazy booleans: not NaN, not ``data.rio.nodata`` and not ``nodata`` (either may be NaN).

    Examples
    --------
    >>> r = xr.DataArray(np.array([0, 1, 9, np.nan]), dims="x").rio.write_nodata(0)
    >>> valid_pixels(r, 9).values.tolist()
    [False, True, False, False]
    """
    valid = data.notnull() if data.dtype.kind == "f" else xr.ones_like(data, dtype=bool)
    for value in (data.rio.nodata, nodata):
        if value is not None and not np.isnan(value):
            valid &= data != value
    return valid


def with_band_axis(data: xr.DataArray) -> xr.DataArray:
    """``data`` with a ``band`` dimension (a single band for a ``(y, x)`` raster).

    Examples
    --------
    >>> with_band_axis(xr.DataArray(np.zeros((2, 3)), dims=("y", "x"))).dims
    ('band', 'y', 'x')
    >>> with_band_axis(xr.DataArray(np.zeros((4, 2, 3)), dims=("channel", "y", "x")))
    Traceback (most recent call last):
    ...
    geoxr.errors.BandCountError: DataArray '(unnamed)' has dims ('channel', 'y', 'x') and no 'band' dimension: its bands would be pooled into one. Rename the band dimension, e.g. data.rename(channel='band').
    """
    if "band" in data.dims:
        return data
    others = [d for d in data.dims if d not in ("y", "x", "time")]
    if not others:  # (y, x), or a series of one band (time, y, x)
        return data.expand_dims(band=[1])
    raise BandCountError(
        f"DataArray {data.name or '(unnamed)'!r} has dims {data.dims} and no 'band' "
        "dimension: its bands would be pooled into one. Rename the band dimension, e.g. "
        f"data.rename({others[0]}='band')."
    )


def _array_sums(data: xr.DataArray, nodata: float | None) -> Any:
    """Lazy per-band ``(count, sum, sum of squares)`` of the valid values of ``data``."""
    data = with_band_axis(data)
    valid = valid_pixels(data, nodata)
    values = data.astype(np.float64).where(valid, 0.0)
    dims = [d for d in data.dims if d != "band"]
    return [valid.sum(dims).data, values.sum(dims).data, (values * values).sum(dims).data]


def _masked_sums(source: RasterSource, window: Window, nodata: float | None) -> np.ndarray:
    """``(3, band)`` count, sum and sum of squares of the unmasked values of one read."""
    chip = source.read(window)
    values = np.moveaxis(np.ma.getdata(chip), -3, 0)  # (band, [time,] y, x)
    valid = ~np.moveaxis(np.ma.getmaskarray(chip), -3, 0)
    if values.dtype.kind == "f":
        valid &= ~np.isnan(values)
    if nodata is not None:
        valid &= values != nodata
    sums = np.zeros((3, len(values)), np.float64)
    for band, (v, ok) in enumerate(zip(values, valid, strict=True)):
        kept = v[ok].astype(np.float64)
        sums[:, band] = kept.size, kept.sum(), np.dot(kept, kept)
    return sums


def _source_sums(source: RasterSource, nodata: float | None) -> Any:
    """Lazy per-band sums of a source's reads, one task per block of its ``.data``."""
    chunks = source.data.chunks or tuple((n,) for n in source.shape)
    parts = [
        dask.delayed(_masked_sums, pure=True)(source, window, nodata)
        for _, window in block_windows(chunks[-2:])
    ]
    return dask.delayed(np.sum)(parts, axis=0)


def compute_band_stats(
    data: xr.DataArray | RasterSource, *, nodata: float | None = None, min_std: float = 1e-6
) -> BandStats:
    """Mean and std per band over valid pixels, in one pass of one dask compute.

    Sums run in float64, one task per block.

    Parameters
    ----------
    data : xarray.DataArray or RasterSource
        A ``(band, y, x)`` or ``(y, x)`` raster (e.g. a source's lazy ``.data``), whose nodata is
        ``data.rio.nodata`` and NaN; 0 counts as data unless declared nodata. Or a
        raster source, whose own masks say what is valid (its nodata, a GDAL mask,
        pixels a warped source or a date does not cover), band by band, as chips
        mask them; a ``(time, band, y, x)`` source pools its dates.
    nodata : float, optional
        A value to ignore as well.
    min_std : float
        Floor for the std so constant bands do not divide by zero.

    Raises
    ------
    EmptyBandError
        If a band has no valid pixel: its mean and std are undefined.

    Examples
    --------
    >>> r = xr.DataArray(np.array([[[1.0, 3.0], [0.0, 9.0]]]), dims=("band", "y", "x"))
    >>> compute_band_stats(r, nodata=9.0)
    BandStats(means=(1.333...,), stds=(1.247...,))
    >>> import os
    >>> source = geoxr.RasterioSource(os.path.join(DATA, "rasterio_rgb_byte/RGB.byte.tif"))
    >>> compute_band_stats(source).means  # the file's nodata (0) and its mask left out
    (44.43..., 66.02..., 71.39...)
    """
    if isinstance(data, xr.DataArray):
        sums = _array_sums(data, nodata)
        label = f"DataArray {data.name!r}"
    else:
        sums = _source_sums(data, nodata)
        label = repr(data)
    count, total, total_sq = (np.asarray(s, np.float64) for s in dask.compute(sums)[0])
    empty = np.flatnonzero(count == 0)
    if empty.size:
        raise EmptyBandError(
            f"Band(s) {empty.tolist()} (0-based) of {label} have no valid pixel: every pixel "
            "is nodata, NaN or masked, so their mean and std are undefined. Check the nodata "
            "value and channel_order, or give the statistics yourself (BandStats)."
        )
    means = total / count
    stds = np.sqrt(np.maximum(total_sq / count - means**2, 0.0))
    stds = np.maximum(stds, min_std)
    return BandStats(tuple(means.tolist()), tuple(stds.tolist()))
