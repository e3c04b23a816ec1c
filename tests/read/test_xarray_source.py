"""Tests of geoxr.read.xarray_source (XarraySource) over rioxarray and Zarr DataArrays."""

import pickle

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from dask.base import tokenize

import geoxr
from geoxr import RasterioSource, Window, XarraySource
from geoxr.testing import assert_same_grid, raise_if_dask_computes

WINDOWS = [Window(0, 0, 32, 48), Window(100, 150, 64, 64), Window(0, 0, 443, 489)]


@pytest.fixture(scope="module")
def nc_dataarray(nc_stack):
    """The NC stack opened lazily by rioxarray, in uneven chunks."""
    return rioxarray.open_rasterio(nc_stack, chunks={"y": 200, "x": 150})


@pytest.fixture
def nc_zarr(nc_dataarray, tmp_path):
    """The NC stack written to Zarr, reopened with xr.open_zarr and given its CRS back."""
    store = tmp_path / "stack.zarr"
    nc_dataarray.to_dataset(name="stack").to_zarr(store, mode="w", consolidated=False)
    return xr.open_zarr(store, consolidated=False)["stack"]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_read_equals_isel_over_open_rasterio(nc_dataarray, nc_stack, window):
    src = XarraySource(nc_dataarray)
    assert src.nodata == -99999.0 and src.num_channels == 6
    chip = src.read(window)
    expected = nc_dataarray.isel(window.isel()).values
    np.testing.assert_array_equal(chip.data, expected)
    np.testing.assert_array_equal(chip.mask, expected == -99999.0)
    # ... and the same chip RasterioSource reads from the file.
    rio_chip = RasterioSource(nc_stack).read(window)
    np.testing.assert_array_equal(chip.data, rio_chip.data)
    np.testing.assert_array_equal(chip.mask, rio_chip.mask)


def test_grid_and_lazy_data_over_open_rasterio(nc_dataarray, nc_stack):
    src = XarraySource(nc_dataarray)
    assert src.grid.aligned_with(RasterioSource(nc_stack).grid)
    with raise_if_dask_computes():
        data = src.data
    assert data.dims == ("band", "y", "x") and data.chunks[1] == (200, 200, 43)
    assert_same_grid(data, nc_dataarray)
    with rasterio.open(nc_stack) as ds:
        raw = ds.read()
    np.testing.assert_array_equal(data.values, np.where(raw == -99999.0, np.nan, raw))


def test_read_past_edge_bbox_and_channels(nc_dataarray):
    src = XarraySource(nc_dataarray, bbox=(40, 60, 400, 460), channel_order=[5, 0])
    assert src.shape == (360, 400) and src.channels == [5, 0]
    window = Window(350, 390, 20, 20)
    chip = src.read(window)
    expected = nc_dataarray.isel(band=[5, 0], y=slice(390, 400), x=slice(450, 460)).values
    np.testing.assert_array_equal(chip.data[:, :10, :10], expected)
    assert chip.mask[:, 10:, :].all() and chip.mask[:, :, 10:].all()
    assert (chip.data[:, 10:, :] == 0).all()
    assert src.transform.almost_equals(
        nc_dataarray.rio.transform() @ rasterio.Affine.translation(60, 40)
    )


def test_read_over_zarr_store(nc_zarr, nc_dataarray, nc_stack):
    # CF decoding turns -99999 into NaN; NaN is nodata for floats.
    assert nc_zarr.rio.crs is None
    src = XarraySource(nc_zarr.rio.write_crs(nc_dataarray.rio.crs))
    assert src.grid.aligned_with(RasterioSource(nc_stack).grid)
    with rasterio.open(nc_stack) as ds:
        for window in WINDOWS:
            chip = src.read(window)
            expected = nc_zarr.isel(window.isel()).values
            np.testing.assert_array_equal(chip.data, expected)
            raw = ds.read(window=window.to_rasterio())
            np.testing.assert_array_equal(chip.mask, raw == -99999.0)
            np.testing.assert_array_equal(chip.data[~chip.mask], raw[raw != -99999.0])
    with raise_if_dask_computes():
        data = src.data
    np.testing.assert_array_equal(data.values, nc_zarr.values)


@pytest.mark.parametrize("dim", ["y", "x"])
def test_a_flipped_dataarray_keeps_its_coordinates(nc_dataarray, dim):
    flipped = nc_dataarray.isel({dim: slice(None, None, -1)})  # its stored GeoTransform is stale
    src = XarraySource(flipped)
    np.testing.assert_array_equal(src.data[dim].values, flipped[dim].values)
    assert src.bounds == nc_dataarray.rio.bounds()
    window = Window(10, 20, 16, 16)
    np.testing.assert_array_equal(src.read(window).data, flipped.isel(window.isel()).values)


def test_pickle_round_trip(nc_dataarray):
    src = XarraySource(nc_dataarray, channel_order=[2])
    clone = pickle.loads(pickle.dumps(src))
    window = Window(10, 20, 30, 40)
    np.testing.assert_array_equal(clone.read(window).data, src.read(window).data)


def test_two_dimensional_dataarray_gets_a_band(nc_dataarray):
    src = XarraySource(nc_dataarray.isel(band=3))
    assert src.num_channels == 1
    window = Window(5, 6, 7, 8)
    np.testing.assert_array_equal(
        src.read(window).data[0], nc_dataarray.isel(band=3, **window.isel()).values
    )


def test_transposed_dims_are_accepted(nc_dataarray):
    src = XarraySource(nc_dataarray.transpose("y", "x", "band"))
    window = Window(100, 100, 10, 10)
    np.testing.assert_array_equal(src.read(window).data, nc_dataarray.isel(window.isel()).values)


def test_missing_crs_raises(nc_zarr, nc_dataarray):
    with pytest.raises(geoxr.NoGeoreferenceError, match=r"'stack' has no CRS.*write_crs"):
        XarraySource(nc_zarr)
    with pytest.raises(geoxr.NoGeoreferenceError, match="has no CRS"):
        XarraySource(nc_dataarray.drop_vars("spatial_ref"))


@pytest.mark.parametrize(
    ("rename", "match"),
    [
        (
            {"x": "lon", "y": "lat"},
            r"has dims \('band', 'lat', 'lon'\); expected \('band', 'y', 'x'\)",
        ),
        ({"band": "channel"}, r"has dims \('channel', 'y', 'x'\)"),
    ],
)
def test_wrong_dims_raise(nc_dataarray, rename, match):
    with pytest.raises(geoxr.NoGeoreferenceError, match=match):
        XarraySource(nc_dataarray.rename(rename))


def test_extra_dim_raises(nc_dataarray):
    stacked = nc_dataarray.expand_dims(time=[0, 1])
    with pytest.raises(geoxr.NoGeoreferenceError, match="expected"):
        XarraySource(stacked)


def test_not_a_dataarray_raises(nc_dataarray):
    with pytest.raises(
        geoxr.NoGeoreferenceError, match=r"expects an xarray\.DataArray, got Dataset"
    ):
        XarraySource(nc_dataarray.to_dataset(name="stack"))


def test_bad_bbox_and_channels(nc_dataarray):
    with pytest.raises(geoxr.WindowError, match="reaches outside raster"):
        XarraySource(nc_dataarray, bbox=(0, 0, 444, 10))
    with pytest.raises(geoxr.WindowError, match="has 6 bands"):
        XarraySource(nc_dataarray, channel_order=[6])


def test_an_array_without_coordinates_or_transform_is_refused():
    # It got the identity transform: pixel coordinates taken for map coordinates.
    bare = xr.DataArray(np.zeros((1, 4, 5), np.uint8), dims=("band", "y", "x")).rio.write_crs(
        32616
    )
    with pytest.raises(
        geoxr.NoGeoreferenceError, match=r"neither x/y coordinates nor a transform"
    ):
        geoxr.XarraySource(bare)


class _CountingBackend(xr.backends.BackendArray):
    """A lazily indexed array, as xarray's backends give them, that counts pixels read."""

    def __init__(self, values):
        self.values, self.shape, self.dtype = values, values.shape, values.dtype
        self.pixels_read = 0

    def __getitem__(self, key):
        return xr.core.indexing.explicit_indexing_adapter(
            key, self.shape, xr.core.indexing.IndexingSupport.BASIC, self._read
        )

    def _read(self, key):
        out = self.values[key]
        self.pixels_read += out.size
        return out


def test_data_of_a_lazily_indexed_array_reads_no_pixel_until_computed(nc_stack):
    # A DataArray that is lazy but not a dask array (rioxarray.open_rasterio, a store
    # opened without chunks) was read whole when .data was built.
    opened = rioxarray.open_rasterio(nc_stack)
    backend = _CountingBackend(opened.values)
    lazy = opened.copy(data=xr.core.indexing.LazilyIndexedArray(backend))
    source = XarraySource(lazy, raster_transformers=[geoxr.CastTransformer("float64")])
    data = source.data
    assert backend.pixels_read == 0 and data.chunks is not None  # tokens read nothing either
    chip = source.read(Window(100, 200, 10, 10))
    assert backend.pixels_read == 6 * 10 * 10  # a chip reads its window, not blocks
    np.testing.assert_array_equal(data[:, 100:110, 200:210].values, chip.filled(np.nan))
    # A (y, x) array too; other bands of one file are other work (another token).
    backend.pixels_read = 0
    one = XarraySource(lazy.isel(band=0))
    assert one.read(Window(0, 0, 2, 2)).shape == (1, 2, 2) and backend.pixels_read == 4
    first, second = XarraySource(lazy.isel(band=[0])), XarraySource(lazy.isel(band=[1]))
    assert tokenize(first) != tokenize(second) and backend.pixels_read == 4
    # The file opened again is the same work; a band picked alone is told by its number.
    again = opened.copy(data=xr.core.indexing.LazilyIndexedArray(_CountingBackend(opened.values)))
    assert tokenize(XarraySource(again.isel(band=[0]))) == tokenize(first)
    assert tokenize(XarraySource(lazy.isel(band=0))) != tokenize(XarraySource(lazy.isel(band=1)))
    assert tokenize(XarraySource(lazy, bbox=(0, 0, 5, 5))) != tokenize(XarraySource(lazy))
    assert backend.pixels_read == 4
    # Pixels edited in memory, or no x/y coordinates to tell windows apart: work of its own.
    fresh = tokenize(XarraySource(rioxarray.open_rasterio(nc_stack)))
    assert tokenize(XarraySource(rioxarray.open_rasterio(nc_stack))) == fresh
    edited = rioxarray.open_rasterio(nc_stack)
    edited[0, :2, :2] = 7
    assert tokenize(XarraySource(edited)) != fresh
    bare = rioxarray.open_rasterio(nc_stack, parse_coordinates=False)
    assert tokenize(XarraySource(bare)) != tokenize(XarraySource(bare))


def test_a_nodata_or_bbox_of_the_wrong_kind_is_a_geoxr_error(nc_stack):
    data = RasterioSource(nc_stack).data
    with pytest.raises(geoxr.ConfigError, match=r"nodata '0' for .* is not a number"):
        XarraySource(data, nodata="0")  # np.isnan's TypeError before
    with pytest.raises(
        geoxr.WindowError, match=r"is not 4 values; give \(ymin, xmin, ymax, xmax\)"
    ):
        XarraySource(data, bbox=(0, 0, 10))  # Window.from_box's TypeError before
    with pytest.raises(geoxr.ConfigError, match=r"nodata True .* is not a number"):
        XarraySource(data, nodata=True)
    assert XarraySource(data, nodata=np.array([-99999.0])).nodata == -99999.0  # netCDF-style
