"""Band statistics as a dask reduction, and normalisation as pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import xarray as xr

__all__ = ["BandStats", "compute_band_stats", "model_input"]


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
        float32 array of the same shape to write into (e.g. a slot of a batch).

    Examples
    --------
    >>> chip = np.array([[[12, 8]]], np.uint8)
    >>> model_input(chip, BandStats((10.0,), (2.0,)), invalid=np.array([[False, True]]))
    array([[[1., 0.]]], dtype=float32)
    """
    if out is None:
        out = np.empty(values.shape, np.float32)
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


def _valid(data: xr.DataArray, nodata: float | None) -> xr.DataArray:
    valid = data.notnull() if data.dtype.kind == "f" else xr.ones_like(data, dtype=bool)
    if nodata is not None:
        valid &= data != nodata
    return valid


def compute_band_stats(
    data: xr.DataArray, *, nodata: float | None = None, min_std: float = 1e-6
) -> BandStats:
    """Mean and std per band over valid pixels, in one pass of one dask compute.

    Nodata is ``nodata`` (default ``data.rio.nodata``) and NaN; 0 counts as data
    unless declared nodata. Sums run in float64, block by block.

    Parameters
    ----------
    data : xarray.DataArray
        ``(band, y, x)`` raster, usually a source's lazy ``.data``.
    nodata : float, optional
        Value to ignore.
    min_std : float
        Floor for the std so constant bands do not divide by zero.

    Examples
    --------
    >>> r = xr.DataArray(np.array([[[1.0, 3.0], [0.0, 9.0]]]), dims=("band", "y", "x"))
    >>> compute_band_stats(r, nodata=9.0)
    BandStats(means=(1.333...,), stds=(1.247...,))
    """
    if nodata is None and hasattr(data, "rio"):
        nodata = data.rio.nodata
    if nodata is not None and np.isnan(nodata):
        nodata = None
    valid = _valid(data, nodata)
    values = data.astype(np.float64).where(valid, 0.0)
    dims = [d for d in data.dims if d != "band"]
    count = valid.sum(dims).data
    total = values.sum(dims).data
    total_sq = (values * values).sum(dims).data
    count, total, total_sq = dask.compute(count, total, total_sq)
    count = np.maximum(np.asarray(count, np.float64), 1.0)
    means = np.asarray(total) / count
    stds = np.sqrt(np.maximum(np.asarray(total_sq) / count - means**2, 0.0))
    stds = np.maximum(stds, min_std)
    return BandStats(tuple(means.tolist()), tuple(stds.tolist()))
