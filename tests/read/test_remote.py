import os

import numpy as np
import pytest
import rasterio

import geoxr
from geoxr.grid import Window


@pytest.fixture(autouse=True)
def no_gdal_cache_between_tests(monkeypatch):
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("CPL_VSIL_CURL_CACHE_SIZE", "0")


def test_remote_cog_window_fetches_a_small_part(http_data, nc_stack):
    base, counter = http_data
    url = f"/vsicurl/{base}/nc_landsat7_raleigh/lsat7_2000_stack.tif"
    size = os.path.getsize(nc_stack)
    counter.reset()
    source = geoxr.RasterioSource(url)
    assert source.shape == (443, 489) and source.crs.to_epsg() == 32119
    window = Window(10, 10, 32, 32)
    chip = source.read(window)
    fetched = counter.bytes_sent()
    with rasterio.open(nc_stack) as ds:
        expected = ds.read(window=window.to_rasterio())
    np.testing.assert_array_equal(chip.data, expected)
    assert 0 < fetched < size / 2, f"fetched {fetched} of {size} bytes"


def test_remote_lazy_data_reads_only_asked_blocks(http_data, nc_stack):
    base, counter = http_data
    source = geoxr.RasterioSource(
        f"/vsicurl/{base}/nc_landsat7_raleigh/lsat7_2000_stack.tif", chunk_size=256
    )
    counter.reset()
    part = source.data.isel(y=slice(0, 16), x=slice(0, 16)).values
    fetched = counter.bytes_sent()
    with rasterio.open(nc_stack) as ds:
        expected = ds.read(window=((0, 16), (0, 16)))
    np.testing.assert_array_equal(np.nan_to_num(part, nan=-99999), expected)
    assert fetched < os.path.getsize(nc_stack) / 2


def test_unreachable_url_is_a_clear_error():
    with pytest.raises(
        geoxr.RasterReadError, match=r"Cannot open raster '/vsicurl/http://127\.0\.0\.1:9/"
    ):
        geoxr.RasterioSource("/vsicurl/http://127.0.0.1:9/missing.tif")
