"""The interface every raster source shares: a grid, lazy ``.data`` and windowed ``.read``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS

from geoxr.errors import WindowError
from geoxr.grid import Grid, Window
from geoxr.read.transformers import (
    RasterTransformer,
    apply_transformers,
    fill_masked,
    output_nodata,
)

__all__ = ["BBox", "RasterSource", "invalid_pixels", "resolve_bbox", "resolve_channels"]

BBox = Window | tuple[int, int, int, int]


def invalid_pixels(chip: np.ma.MaskedArray) -> np.ndarray:
    """``(y, x)`` booleans: True where any band (of any date) of a masked chip is masked.

    Examples
    --------
    >>> chip = np.ma.MaskedArray(np.zeros((2, 1, 2)), mask=[[[True, False]], [[False, False]]])
    >>> invalid_pixels(chip)
    array([[ True, False]])
    """
    if np.ma.getmask(chip) is np.ma.nomask:
        return np.zeros(chip.shape[-2:], bool)
    mask = np.ma.getmaskarray(chip)
    return np.asarray(mask.reshape(-1, *mask.shape[-2:]).any(axis=0))


def resolve_bbox(bbox: BBox | None, full: Grid, *, label: str) -> Window:
    """A pixel bbox (Window or RV's ``(ymin, xmin, ymax, xmax)``) checked against the raster."""
    if bbox is None:
        return full.extent
    window = bbox if isinstance(bbox, Window) else Window.from_box(*bbox)
    if not full.extent.contains(window):
        raise WindowError(
            f"bbox {window} reaches outside raster {label!r}, whose extent is "
            f"{full.height} rows x {full.width} columns. Give a bbox inside "
            f"(0, 0, {full.height}, {full.width}) as (ymin, xmin, ymax, xmax) in pixels."
        )
    return window


def resolve_channels(channel_order: Sequence[int] | None, count: int, *, label: str) -> list[int]:
    """0-based band indices to read, checked against the band count."""
    if channel_order is None:
        return list(range(count))
    channels = [int(c) for c in channel_order]
    bad = [c for c in channels if not 0 <= c < count]
    if bad or not channels:
        raise WindowError(
            f"channel_order {list(channel_order)} is invalid for {label!r}, which has "
            f"{count} bands; give 0-based band indices in 0..{count - 1}."
        )
    return channels


class _ChunkReader:
    """Array-like that dask slices block by block; each block is one ``_read_inside`` call."""

    def __init__(self, source: RasterSource) -> None:
        self.source = source
        self.shape = (len(source.channels), *source.grid.shape)
        self.dtype = source._raw_dtype
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bands, rows, cols = key
        window = Window.from_box(rows.start, cols.start, rows.stop, cols.stop)
        chip = self.source._read_inside(window)[bands]
        nodata = self.source.nodata
        if self.source.raster_transformers and chip.dtype.kind == "f":
            # Transformers re-derive the mask from the values (mask_of): keep true NaN as
            # NaN and mark every other masked pixel with the declared nodata.
            values = chip.data.copy()
            values[np.ma.getmaskarray(chip) & ~np.isnan(values)] = (
                np.nan if nodata is None else nodata
            )
            return values
        return fill_masked(chip, nodata)


class RasterSource(ABC):
    """A georeferenced raster read lazily (``.data``) or window by window (``.read``).

    Subclasses implement :meth:`_read_inside` (a window inside the extent, as a
    masked array) and :meth:`_raw_data` (the lazy array before transformers).
    """

    grid: Grid
    channels: list[int]
    nodata: float | None
    raster_transformers: tuple[RasterTransformer, ...]

    @abstractmethod
    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        """Read ``self.channels`` of a window that lies inside the extent."""

    @abstractmethod
    def _raw_data(self) -> xr.DataArray:
        """The lazy ``(band, y, x)`` array of ``self.channels``, before transformers."""

    @property
    def data(self) -> xr.DataArray:
        """The whole raster as a lazy, georeferenced ``(band, y, x)`` DataArray.

        Building it reads no pixel. Invalid pixels are NaN for float rasters and
        the declared ``nodata`` for integer rasters (see :meth:`nodata_mask`).
        """
        return apply_transformers(self._raw_data(), self.raster_transformers, nodata=self.nodata)

    def read(self, window: Window) -> np.ma.MaskedArray:
        """Read one window as a masked ``(band, y, x)`` chip, without a dask graph.

        Parts of the window past the raster's edge are padded with 0 and masked.
        """
        inner = window.intersection(self.grid.extent)
        if inner is None:
            values = np.zeros((*self.chip_prefix, *window.shape), self.dtype)
            return np.ma.MaskedArray(values, mask=np.ones(values.shape, bool))
        chip = self._read_inside(inner)
        for transformer in self.raster_transformers:
            chip = transformer.transform(chip)
        if inner == window:
            return chip
        values = np.zeros((*chip.shape[:-2], *window.shape), chip.dtype)
        mask = np.ones(values.shape, bool)
        rows = slice(inner.ymin - window.ymin, inner.ymax - window.ymin)
        cols = slice(inner.xmin - window.xmin, inner.xmax - window.xmin)
        values[..., rows, cols] = chip.data
        mask[..., rows, cols] = np.ma.getmaskarray(chip)
        return np.ma.MaskedArray(values, mask=mask)

    @property
    def chip_prefix(self) -> tuple[int, ...]:
        """Leading dims of a chip before ``(y, x)``: ``(band,)``, or ``(time, band)``."""
        return (self.num_channels,)

    def nodata_mask(self, window: Window) -> np.ndarray:
        """``(y, x)`` booleans, True where any band is nodata or the window is off the raster."""
        return invalid_pixels(self.read(window))

    @property
    def data_nodata(self) -> float | None:
        """Value of invalid pixels in integer ``.data`` (``data.rio.nodata``); None for floats."""
        return output_nodata(self.dtype, self.nodata)

    @property
    def dtype(self) -> np.dtype:
        """The dtype chips and ``.data`` have, after transformers."""
        dtype = self._raw_dtype
        for transformer in self.raster_transformers:
            dtype = transformer.out_dtype(dtype)
        return dtype

    @property
    @abstractmethod
    def _raw_dtype(self) -> np.dtype:
        """The dtype before transformers."""

    @property
    def num_channels(self) -> int:
        """Number of bands of chips and ``.data`` (after transformers)."""
        bands = len(self.channels)
        for transformer in self.raster_transformers:
            bands = transformer.out_bands(bands)
        return bands

    @property
    def crs(self) -> CRS:
        """Coordinate reference system."""
        return self.grid.crs

    @property
    def transform(self) -> Affine:
        """Affine transform of pixel corners to map coordinates."""
        return self.grid.transform

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self.grid.shape

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in map units."""
        return self.grid.bounds

    @property
    def extent(self) -> Window:
        """The window covering the whole source."""
        return self.grid.extent

    def _lazy_reads(
        self,
        token: str,
        chunks: tuple[int | tuple[int, ...], int | tuple[int, ...]],
        *,
        name: str,
        band_numbers: Sequence[int],
    ) -> xr.DataArray:
        """A lazy array whose every block is one windowed read of this source."""
        array = da.from_array(
            _ChunkReader(self),
            chunks=(-1, *chunks),
            name=f"geoxr-read-{tokenize(token, chunks)}",
            lock=False,
            asarray=False,
            fancy=False,
            meta=np.array((), self._raw_dtype),
        )
        return self._georeference(array, name=name, band_numbers=band_numbers)

    def _georeference(
        self, array: object, *, name: str, band_numbers: Sequence[int]
    ) -> xr.DataArray:
        """Wrap a ``(band, y, x)`` array with coordinates, CRS and transform via rioxarray."""
        data = xr.DataArray(
            array,
            dims=("band", "y", "x"),
            coords={"band": list(band_numbers), **self.grid.coords()},
            name=name,
        )
        data = data.rio.write_crs(self.grid.crs).rio.write_transform(self.grid.transform)
        is_float = np.issubdtype(self._raw_dtype, np.floating)
        nodata = np.nan if is_float else self.nodata
        return data.rio.write_nodata(nodata, encoded=False)
