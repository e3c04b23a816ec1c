"""XarraySource: the raster source interface over any georeferenced DataArray."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from xarray.core.indexing import NumpyIndexingAdapter

from geoxr._files import file_identity
from geoxr.errors import NoGeoreferenceError
from geoxr.grid import Grid, Window, block_chunks
from geoxr.read._base import (
    BBox,
    RasterSource,
    checked_nodata,
    resolve_bbox,
    resolve_channels,
)
from geoxr.read.transformers import (
    RasterTransformer,
    apply_transformers,
    checked_transformers,
    mask_of,
)

__all__ = ["XarraySource"]

#: Block edge (pixels) of ``.data`` over a lazily indexed array: one read per block.
LAZY_BLOCK = 2048


def _in_memory(data_array: xr.DataArray) -> bool:
    """Whether xarray holds the pixels of a lazily indexed array in memory.

    Loaded (``.values`` of a cached array) or assigned to (``array[...] = v``): they
    may no longer be the file's.
    """
    layer: object = data_array.variable._data
    while layer is not None:
        if isinstance(layer, np.ndarray | NumpyIndexingAdapter) or getattr(
            layer, "_copied", False
        ):
            return True
        layer = getattr(layer, "array", None)
    return False


def _lazy_array_token(data_array: xr.DataArray) -> str:
    """The token of a lazily indexed array: the file it reads (as it is now) and what of it.

    rioxarray names the file in ``encoding["source"]``: the same file opened again
    (a prediction script run again, to resume its store) is the same work, and a
    file rewritten since is other work. Whatever else was selected of it (bands,
    a window, scaling, a variable) shows in its coordinates, encoding or name. An
    array that names no local file, has no x and y coordinates, or whose pixels
    are in memory (loaded, perhaps edited) is work of its own, whatever it holds.
    Nothing here reads a pixel (coordinates, at most).
    """
    source = data_array.encoding.get("source")
    identity = file_identity(source) if isinstance(source, str) else None
    # Without x and y coordinates, windows of one shape would look alike.
    if identity is None or not {"x", "y"} <= set(data_array.coords) or _in_memory(data_array):
        return uuid.uuid4().hex
    return tokenize(
        source,
        identity,
        data_array.name,
        data_array.dims,
        data_array.shape,
        str(data_array.dtype),
        # Where in the file (bands, rows, columns; a band picked alone keeps its
        # number as a scalar coordinate), its CRS and transform (spatial_ref's attrs).
        {name: (coord.values, repr(coord.attrs)) for name, coord in data_array.coords.items()},
        repr(data_array.attrs),
        repr(sorted(data_array.encoding.items())),  # scale and offset, masking
    )


class XarraySource(RasterSource):
    """A raster source over a rioxarray-georeferenced ``DataArray`` (numpy or dask).

    Parameters
    ----------
    data_array : xarray.DataArray
        Dims ``(band, y, x)`` or ``(y, x)``, with a CRS (``data_array.rio.crs``).
        A store opened with ``xr.open_zarr`` works as is, lazily.
    bbox, channel_order, nodata, raster_transformers
        As for :class:`~geoxr.RasterioSource`. ``nodata`` defaults to
        ``data_array.rio.nodata``.

    Examples
    --------
    >>> da = geoxr.testing.make_raster((2, 6, 8), dtype="uint8", nodata=0)
    >>> src = XarraySource(da)
    >>> src.shape, src.crs.to_epsg(), src.nodata
    ((6, 8), 32616, 0.0)
    >>> src.read(Window(4, 6, 4, 4)).mask[0, -1, -1]
    np.True_
    """

    def __init__(
        self,
        data_array: xr.DataArray,
        *,
        bbox: BBox | None = None,
        channel_order: Sequence[int] | None = None,
        nodata: float | None = None,
        raster_transformers: Sequence[RasterTransformer] = (),
    ) -> None:
        if not isinstance(data_array, xr.DataArray):
            raise NoGeoreferenceError(
                f"XarraySource expects an xarray.DataArray, got {type(data_array).__name__}. "
                "Open files with RasterioSource, or pass `dataset[variable]`."
            )
        # Lazily indexed (rioxarray.open_rasterio, a store opened without chunks): chips
        # are read from it window by window, and .data is blocks of such reads. Expanding,
        # transposing or tokenizing it would read it all: what follows works on a shadow
        # of it (its metadata over lazy zeros), and its token is this source's own.
        self._lazy: xr.DataArray | None = None
        self._lazy_token: str | None = None
        if not isinstance(data_array.variable._data, np.ndarray | da.Array):
            self._lazy, self._lazy_token = data_array, _lazy_array_token(data_array)
            zeros = da.zeros(data_array.shape, dtype=data_array.dtype, chunks=-1)
            data_array = data_array.copy(data=zeros)
        if data_array.ndim == 2:
            data_array = data_array.expand_dims(band=[1])
        label = str(data_array.name or "DataArray")
        if set(data_array.dims) != {"band", "y", "x"}:
            raise NoGeoreferenceError(
                f"DataArray {label!r} has dims {data_array.dims}; expected ('band', 'y', 'x'). "
                "Rename or transpose it, for example `data.rename(lat='y', lon='x')`."
            )
        data_array = data_array.transpose("band", "y", "x")
        full = Grid.from_dataarray(data_array)
        self.label = label
        window = resolve_bbox(bbox, full, label=label)
        self.channels = resolve_channels(channel_order, data_array.sizes["band"], label=label)
        self.grid = full.crop(window)
        declared = nodata if nodata is not None else data_array.rio.nodata
        value = checked_nodata(declared, label=label)
        self.nodata = None if value is None or math.isnan(value) else value
        self.raster_transformers = checked_transformers(
            raster_transformers, len(self.channels), label=label
        )
        self._array = data_array.isel({"band": self.channels, **window.isel()})
        self._offset = window

    @property
    def _raw_dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        if self._lazy is None:
            values = np.asarray(self._array.isel(window.isel()).values)
        else:  # the window alone, as the lazily indexed array reads it
            part = self._lazy.isel(window.shift(self._offset.row_off, self._offset.col_off).isel())
            if "band" in part.dims:
                part = part.isel(band=self.channels).transpose("band", "y", "x")
            values = np.asarray(part.values)
            values = values[None] if values.ndim == 2 else values
        return np.ma.MaskedArray(values, mask=mask_of(values, self.nodata))

    def _lazy_data(self) -> xr.DataArray:
        # The user's own graph is kept; transformers run on it block by block, masking
        # blocks exactly as _read_inside masks chips (mask_of).
        array = self._array
        band_numbers = array["band"].values.tolist()
        if self._lazy is not None:
            height, width = self.grid.shape
            chunks = (block_chunks(height, LAZY_BLOCK), block_chunks(width, LAZY_BLOCK))
            return self._lazy_reads(chunks, name=self.label, band_numbers=band_numbers)
        if self.raster_transformers:
            return apply_transformers(
                self._georeference(array.data, name=self.label, band_numbers=band_numbers),
                self.raster_transformers,
                nodata=self.nodata,
            )
        if self.nodata is not None and array.dtype.kind == "f":
            array = array.where(array != self.nodata)  # NaN marks nodata in float .data
        return self._georeference(array.data, name=self.label, band_numbers=band_numbers)

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            # Lazily indexed: the file's token, and the bands and window of it read here.
            (self._lazy_token, self.channels, repr(self._offset))
            if self._lazy_token
            else tokenize(self._array),
            self.nodata,
            [repr(t) for t in self.raster_transformers],
        )

    def __repr__(self) -> str:
        return f"XarraySource({self.label!r}, shape={self.shape}, bands={self.num_channels})"
