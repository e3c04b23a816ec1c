"""The interface every raster source shares: a grid, lazy ``.data`` and windowed ``.read``."""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from dask.base import tokenize
from rasterio.crs import CRS

from geoxr.errors import ConfigError, WindowError
from geoxr.grid import Grid, TileLayout, Window, non_integers
from geoxr.read.transformers import RasterTransformer, fill_masked, output_nodata

__all__ = [
    "BBox",
    "RasterSource",
    "any_band_masked",
    "invalid_pixels",
    "resolve_bbox",
    "resolve_channels",
]

BBox = Window | tuple[int, int, int, int]


def invalid_pixels(chip: np.ma.MaskedArray) -> np.ndarray:
    """``(y, x)`` booleans: True where any band (of any date) of a masked chip is masked.

    Examples
    --------
    >>> chip = np.ma.MaskedArray(np.zeros((2, 1, 2)), mask=[[[True, False]], [[False, False]]])
    >>> invalid_pixels(chip)
    array([[ True, False]])
    """
    invalid = any_band_masked(np.ma.getmask(chip))
    return np.zeros(chip.shape[-2:], bool) if invalid is None else invalid


def any_band_masked(mask: np.ndarray | np.bool_) -> np.ndarray | None:
    """``(y, x)`` booleans, True where any band (of any date) of ``mask`` is; ``None`` if nowhere.

    ``mask`` is a chip's mask (``np.ma.nomask`` for none) of shape ``(..., y, x)``.

    Examples
    --------
    >>> any_band_masked(np.array([[[True, False]], [[False, False]]]))
    array([[ True, False]])
    >>> any_band_masked(np.zeros((3, 2, 2), bool)) is None, any_band_masked(np.ma.nomask) is None
    (True, True)
    """
    if mask is np.ma.nomask:
        return None
    mask = np.asarray(mask)
    invalid = np.asarray(mask.reshape(-1, *mask.shape[-2:]).any(axis=0))
    return invalid if invalid.any() else None


def resolve_bbox(bbox: BBox | None, full: Grid, *, label: str) -> Window:
    """A pixel bbox (Window or RV's ``(ymin, xmin, ymax, xmax)``) checked against the raster.

    Python and numpy integers are pixel indices; floats and bools are refused, not
    truncated (``int(100.7)`` would end the bbox at row 100).
    """
    if bbox is None:
        return full.extent
    if isinstance(bbox, np.ndarray) and bbox.ndim == 1:
        bbox = tuple(bbox.tolist())  # np.array([0, 0, 256, 256]), as channel_order takes
    given = (
        (bbox.row_off, bbox.col_off, bbox.height, bbox.width) if isinstance(bbox, Window) else bbox
    )
    if not isinstance(bbox, Window) and (not isinstance(given, Sequence) or len(given) != 4):
        raise WindowError(
            f"bbox {bbox} for {label!r} is not 4 values; give (ymin, xmin, ymax, xmax) "
            "in pixels, e.g. bbox=(0, 0, 256, 256)."
        )
    if not_ints := non_integers(given):
        raise WindowError(
            f"bbox {bbox} for {label!r} holds {not_ints}, which are not integer pixel "
            "indices. Give (ymin, xmin, ymax, xmax) as ints, e.g. bbox=(0, 0, 256, 256)."
        )
    window = bbox if isinstance(bbox, Window) else Window.from_box(*bbox)
    if not full.extent.contains(window):
        raise WindowError(
            f"bbox {window} reaches outside raster {label!r}, whose extent is "
            f"{full.height} rows x {full.width} columns. Give a bbox inside "
            f"(0, 0, {full.height}, {full.width}) as (ymin, xmin, ymax, xmax) in pixels."
        )
    return window


def checked_nodata(nodata: object, *, label: str) -> float | None:
    """A nodata value as a float (NaN: "none", whatever the file says), or ``None``.

    Examples
    --------
    >>> checked_nodata(np.array([-99999]), label="x"), checked_nodata(None, label="x")
    (-99999.0, None)
    >>> checked_nodata("0", label="x")
    Traceback (most recent call last):
    ...
    geoxr.errors.ConfigError: nodata '0' for 'x' is not a number; give e.g. nodata=0 (or NaN), or leave it out to use the raster's own.
    """
    if isinstance(nodata, np.ndarray) and nodata.size == 1:
        nodata = nodata.item()  # as netCDF attributes often hold it
    if nodata is None:
        return None
    if not isinstance(nodata, numbers.Real) or isinstance(nodata, bool):
        raise ConfigError(
            f"nodata {nodata!r} for {label!r} is not a number; give e.g. nodata=0 (or NaN), "
            "or leave it out to use the raster's own."
        )
    return float(nodata)


def resolve_channels(channel_order: Sequence[int] | None, count: int, *, label: str) -> list[int]:
    """0-based band indices to read, checked against the band count.

    Python and numpy integers are band indices; floats and bools are refused, not
    truncated (``int(1.7)`` would read band 1).
    """
    if channel_order is None:
        return list(range(count))
    try:
        given = list(channel_order)
    except TypeError:
        example = f"[{channel_order}]" if not non_integers([channel_order]) else "[0, 1, 2]"
        raise WindowError(
            f"channel_order {channel_order} for {label!r} is not a sequence of band "
            f"indices. Give a list of 0-based ints, e.g. channel_order={example}."
        ) from None
    not_ints = non_integers(given)
    if not_ints:
        raise WindowError(
            f"channel_order {given} for {label!r} holds {not_ints}, which are not integer "
            "band indices. Give 0-based ints, e.g. channel_order=[0, 1, 2]."
        )
    channels = [int(c) for c in given]
    bad = [c for c in channels if not 0 <= c < count]
    if bad or not channels:
        raise WindowError(
            f"channel_order {given} is invalid for {label!r}, which has "
            f"{count} bands; give 0-based band indices in 0..{count - 1}."
        )
    return channels


class _ChunkReader:
    """Array-like that dask slices block by block; each block is one :meth:`RasterSource.read`.

    Blocks are the very chips ``read`` returns (transformers included), as ``dtype``
    with masked pixels set to ``fill`` (NaN for floats), so ``.data`` and chips agree
    by construction (a warped read: to within GDAL's approximate transformer, which
    depends on the window; see ``docs/design.md``).
    """

    def __init__(self, source: RasterSource, dtype: np.dtype, fill: float | None) -> None:
        self.source = source
        self.shape = (source.num_channels, *source.grid.shape)
        self.dtype = dtype
        self.fill = fill
        self.ndim = 3

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        _, rows, cols = key  # the band axis is always whole (one chunk)
        window = Window.from_box(rows.start, cols.start, rows.stop, cols.stop)
        chip = self.source.read(window)
        return fill_masked(np.ma.asarray(chip, self.dtype), self.fill)


class RasterSource(ABC):
    """A georeferenced raster read lazily (``.data``) or window by window (``.read``).

    Subclasses implement :meth:`_read_inside` (a window inside the extent, as a
    masked array, before transformers) and :meth:`_lazy_data` (the lazy array,
    transformers included; :meth:`_lazy_reads` builds it from :meth:`read`).
    """

    grid: Grid
    channels: list[int]
    nodata: float | None
    raster_transformers: tuple[RasterTransformer, ...]

    @abstractmethod
    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        """Read ``self.channels`` of a window that lies inside the extent."""

    @abstractmethod
    def _lazy_data(self) -> xr.DataArray:
        """The lazy ``(band, y, x)`` array, transformers included."""

    @property
    def data(self) -> xr.DataArray:
        """The whole raster as a lazy, georeferenced ``(band, y, x)`` DataArray.

        Building it reads no pixel. Invalid pixels are NaN for float rasters and
        :attr:`data_nodata` for integer rasters (see :meth:`nodata_mask`).
        """
        return self._lazy_data()

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
        cut = (..., *inner.slices_in(window))
        values[cut] = chip.data
        mask[cut] = np.ma.getmaskarray(chip)
        return np.ma.MaskedArray(values, mask=mask)

    def get_chip(self, window: Window) -> np.ndarray:
        """Raster Vision's chip of ``window``: ``(y, x, band)``, channels last, unmasked.

        The values :meth:`read` gives (padded with 0 past the edge), without the mask.
        ``source[window]`` is the same; ``source[rows, cols]`` takes slices of the
        scene, cut to it as numpy cuts slices.

        Examples
        --------
        >>> import os
        >>> src = geoxr.RasterioSource(os.path.join(DATA, "rasterio_rgb_byte/RGB.byte.tif"))
        >>> src.get_chip(Window(300, 300, 2, 4)).shape, src[300:302, 300:304].shape
        ((2, 4, 3), (2, 4, 3))
        """
        return np.moveaxis(np.ma.getdata(self.read(window)), -3, -1)

    def __getitem__(self, key: Window | tuple[slice, slice]) -> np.ndarray:
        if isinstance(key, Window):
            return self.get_chip(key)
        if not (
            isinstance(key, tuple)
            and len(key) == 2
            and all(isinstance(k, slice) and k.step in (None, 1) for k in key)
        ):
            raise WindowError(
                f"source[{key!r}]: expected a Window or two slices of rows and columns, "
                "e.g. source[0:256, 0:256]."
            )
        rows, cols = (k.indices(n) for k, n in zip(key, self.grid.shape, strict=True))
        return self.get_chip(Window.from_box(rows[0], cols[0], rows[1], cols[1]))

    def read_into(self, window: Window, out: np.ndarray) -> np.ndarray | None:
        """Read one window into ``out``, as :meth:`read` would give it; return where it is invalid.

        ``out`` is a ``(*chip_prefix, h, w)`` array of any dtype, for example a
        float32 slot of a training batch: it receives the chip's values cast as
        ``np.copyto(out, chip.data, casting="unsafe")`` would, without the masked
        chip in between (sources that can read straight into ``out`` do, letting
        GDAL convert the values as it decodes them).

        Returns
        -------
        numpy.ndarray or None
            ``(y, x)`` booleans, True where any band is masked (nodata, past the
            edge); ``None`` where no pixel is.

        Examples
        --------
        >>> import os
        >>> src = geoxr.RasterioSource(os.path.join(DATA, "rasterio_rgb_byte/RGB.byte.tif"))
        >>> out = np.empty((3, 32, 32), np.float32)
        >>> invalid = src.read_into(Window(700, 780, 32, 32), out)
        >>> bool(invalid[-1, -1]), float(out[0, -1, -1])
        (True, 0.0)
        """
        inner = window.intersection(self.grid.extent)
        if inner == window:
            return self._read_inside_into(window, out)
        out[...] = 0
        invalid = np.ones(window.shape, bool)
        if inner is not None:
            cut = inner.slices_in(window)
            inside = self._read_inside_into(inner, out[(..., *cut)])
            invalid[cut] = False if inside is None else inside
        return invalid

    def _read_inside_into(self, window: Window, out: np.ndarray) -> np.ndarray | None:
        """:meth:`read_into` of a window inside the extent (transformers included)."""
        chip = self._read_inside(window)
        for transformer in self.raster_transformers:
            chip = transformer.transform(chip)
        np.copyto(out, chip.data, casting="unsafe")
        return any_band_masked(np.ma.getmask(chip))

    @property
    def tile_layout(self) -> TileLayout | None:
        """The internal tiles reads decode, where the source knows them (else ``None``)."""
        return None

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

    def _block_reads(
        self,
        chunks: tuple[int | tuple[int, ...], int | tuple[int, ...]],
        *,
        dtype: np.dtype,
        fill: float | None,
    ) -> da.Array:
        """A lazy ``(band, y, x)`` dask array whose every block is one :meth:`read`.

        Blocks are ``dtype``, with masked pixels ``fill`` (NaN for floats).
        """
        return da.from_array(
            _ChunkReader(self, dtype, fill),
            chunks=(-1, *chunks),
            name=f"geoxr-read-{tokenize(self, chunks, dtype, fill)}",
            lock=False,
            asarray=False,
            fancy=False,
            meta=np.array((), dtype),
        )

    def _lazy_reads(
        self,
        chunks: tuple[int | tuple[int, ...], int | tuple[int, ...]],
        *,
        name: str,
        band_numbers: Sequence[int],
    ) -> xr.DataArray:
        """The lazy ``.data`` whose every block is one :meth:`read` of this source."""
        array = self._block_reads(chunks, dtype=self.dtype, fill=self.data_nodata)
        if self.num_channels != len(band_numbers):  # a transformer changed the band count
            band_numbers = range(1, self.num_channels + 1)
        return self._georeference(array, name=name, band_numbers=band_numbers)

    def _georeference(
        self,
        array: object,
        *,
        name: str,
        band_numbers: Sequence[int],
        times: Sequence[object] | None = None,
    ) -> xr.DataArray:
        """A ``([time,] band, y, x)`` array on this source's grid, with its nodata (NaN for floats)."""
        coords: dict[str, object] = {"band": list(band_numbers)}
        if times is not None:
            coords = {"time": times, **coords}
        data = self.grid.wrap(array, dims=(*coords, "y", "x"), name=name, coords=coords)
        floats = np.issubdtype(data.dtype, np.floating)
        nodata = np.nan if floats else output_nodata(data.dtype, self.nodata)
        return data.rio.write_nodata(nodata, encoded=False)
