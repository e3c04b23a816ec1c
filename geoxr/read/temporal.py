"""TemporalMultiRasterSource: dates of one area as a ``time`` dim, ``(time, band, y, x)``."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize

from geoxr.errors import BandCountError, ConfigError
from geoxr.grid import Window
from geoxr.read._base import RasterSource
from geoxr.read.multi import align_to, read_all, stack_nodata

__all__ = ["TemporalMultiRasterSource", "parse_times"]


def parse_times(times: Sequence[object]) -> pd.DatetimeIndex:
    """One timestamp per date, naive in UTC (aware and naive times compare so).

    Examples
    --------
    >>> parse_times(["2009-08-18", "2020-08-31T03:00+05:00"]).astype(str).tolist()
    ['2009-08-18 00:00:00', '2020-08-30 22:00:00']
    """
    parsed, bad = [], []
    for time in times:
        try:
            # A bare number would be nanoseconds since 1970: refused, not guessed.
            is_number = isinstance(time, numbers.Number)
            stamp = pd.NaT if is_number else pd.Timestamp(time)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            bad.append(time)
        elif stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        parsed.append(stamp)
    if bad:
        raise ConfigError(
            f"Times {bad!r} of the TemporalMultiRasterSource are not dates; give one date "
            "per source (a datetime, numpy datetime64 or a string such as '2020-08-31'; "
            "a year as '2020', not 2020)."
        )
    return pd.DatetimeIndex(parsed)


class TemporalMultiRasterSource(RasterSource):
    """Raster sources of the same bands at several dates, on the first source's grid.

    Chips are ``(time, band, y, x)`` and ``.data`` is a lazy DataArray with a
    ``time`` dim of datetime coordinates. Sources on another grid (another CRS,
    a sub-pixel offset, one row more or less) are warped onto the first grid
    per window; what a date does not cover is masked.

    Parameters
    ----------
    raster_sources : sequence of RasterSource
        One source per date, each with the same number of bands.
    times : sequence of datetime-like
        One timestamp per source.
    resampling : str
        GDAL resampling of warped reads.

    Examples
    --------
    >>> import os
    >>> d = os.path.join(DATA, "naip_timeseries_nd")
    >>> ts = TemporalMultiRasterSource(
    ...     [geoxr.RasterioSource(os.path.join(d, f)) for f in sorted(os.listdir(d))],
    ...     times=["2009-08-18", "2020-08-31"])
    >>> ts.data.dims, ts.data.shape
    (('time', 'band', 'y', 'x'), (2, 4, 724, 934))
    >>> ts.read(Window(0, 0, 8, 8)).shape
    (2, 4, 8, 8)
    """

    def __init__(
        self,
        raster_sources: Sequence[RasterSource],
        *,
        times: Sequence[object],
        resampling: str = "nearest",
    ) -> None:
        if not raster_sources:
            raise ConfigError(
                f"TemporalMultiRasterSource needs at least one raster source, got "
                f"{raster_sources!r}. Give one RasterSource per date."
            )
        if len(times) != len(raster_sources):
            raise ConfigError(
                f"Got {len(times)} times for {len(raster_sources)} sources; give "
                "one time per source, in the same order."
            )
        counts = [s.num_channels for s in raster_sources]
        if len(set(counts)) != 1:
            raise BandCountError(
                f"Every date needs the same bands, but the sources have {counts} bands "
                f"({[repr(s) for s in raster_sources]}). Select matching bands with channel_order=[...]."
            )
        self.grid = raster_sources[0].grid
        self.sources = [
            align_to(s, self.grid, resampling=resampling, what=f"Date {i}")
            for i, s in enumerate(raster_sources)
        ]
        self.times = parse_times(times)
        self.label = f"time series of {len(self.sources)} dates"
        self.channels = list(range(counts[0]))
        self._dtype = np.result_type(*(s.dtype for s in self.sources))
        self.nodata = stack_nodata(self._dtype, self.sources)
        self.raster_transformers = ()
        first = self.sources[0].data  # lazy: its chunks and band numbers
        self._chunks = (first.chunks[-2], first.chunks[-1]) if first.chunks else self.grid.shape
        self._band_numbers = first["band"].values.tolist()

    @property
    def _raw_dtype(self) -> np.dtype:
        return np.dtype(self._dtype)

    @property
    def chip_prefix(self) -> tuple[int, ...]:
        """``(time, band)``."""
        return (len(self.sources), self.num_channels)

    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        return read_all(self.sources, window, self._dtype, np.stack)

    def _lazy_data(self) -> xr.DataArray:
        """Lazy ``(time, band, y, x)`` with datetime ``time`` coordinates.

        Each block is one date's :meth:`RasterSource.read`, as the stack's dtype with
        masked pixels set to the stack's nodata, as :meth:`read` masks them.
        """
        dates = [
            s._block_reads(self._chunks, dtype=self.dtype, fill=self.data_nodata)
            for s in self.sources
        ]
        return self._georeference(
            da.stack(dates), name="time_series", band_numbers=self._band_numbers, times=self.times
        )

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, [tokenize(s) for s in self.sources], list(self.times))

    def __repr__(self) -> str:
        return f"TemporalMultiRasterSource({len(self.sources)} dates, shape={self.shape})"
