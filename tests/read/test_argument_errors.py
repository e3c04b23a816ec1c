"""Bad arguments to the raster and vector sources raise geoxr errors that name the fix.

Every geoxr error also subclasses ValueError, so ``except ValueError`` keeps working.
"""

import datetime

import pystac
import pytest

import geoxr
from geoxr import (
    MultiRasterSource,
    RasterioSource,
    TemporalMultiRasterSource,
    VectorSource,
    stac_source,
)


def test_rasterio_source_needs_a_uri():
    with pytest.raises(
        geoxr.ConfigError, match=r"RasterioSource needs at least one uri.*got \[\]"
    ):
        RasterioSource([])


def test_unknown_resampling_raises(rgb_byte):
    with pytest.raises(
        geoxr.ConfigError, match=r"(?s)Unknown resampling 'linear'.*'bilinear'.*'nearest'"
    ):
        RasterioSource(rgb_byte, resampling="linear")


def test_multi_raster_source_arguments(rgb_byte):
    with pytest.raises(geoxr.ConfigError, match=r"MultiRasterSource needs at least one raster"):
        MultiRasterSource([])
    image = RasterioSource(rgb_byte)
    with pytest.raises(
        geoxr.ConfigError,
        match=r"primary_source_idx 2 is not an index of the 2 sources; give an index in 0\.\.1",
    ):
        MultiRasterSource([image, image], primary_source_idx=2)


def test_temporal_source_arguments(rgb_byte):
    with pytest.raises(
        geoxr.ConfigError, match=r"TemporalMultiRasterSource needs at least one raster"
    ):
        TemporalMultiRasterSource([], times=[])
    image = RasterioSource(rgb_byte)
    with pytest.raises(geoxr.ConfigError, match=r"Got 1 times for 2 sources.*one time per source"):
        TemporalMultiRasterSource([image, image], times=["2020-01-01"])


def test_stac_source_arguments(rgb_byte):
    with pytest.raises(geoxr.ConfigError, match=r"No STAC items given"):
        stac_source([], ["image"])
    item = pystac.Item(
        "undated",
        None,
        None,
        None,
        {"start_datetime": "2020-01-01T00:00:00Z", "end_datetime": "2020-02-01T00:00:00Z"},
    )
    item.add_asset("image", pystac.Asset(str(rgb_byte)))
    dated = pystac.Item("dated", None, None, datetime.datetime(2021, 1, 1), {})
    dated.add_asset("image", pystac.Asset(str(rgb_byte)))
    with pytest.raises(geoxr.ConfigError, match=r"STAC items \['undated'\] have no datetime"):
        stac_source([dated, item], ["image"])


def test_vector_source_on_invalid():
    with pytest.raises(
        geoxr.ConfigError, match=r"on_invalid must be 'repair', 'drop' or 'raise', got 'ignore'"
    ):
        VectorSource("x.gpkg", on_invalid="ignore")


def test_a_read_error_in_a_cluster_worker_reaches_the_client_as_itself(tmp_path):
    # It chained rasterio's GDAL error, which does not unpickle: the client got a plain
    # Exception, past `except RasterReadError` and `except OSError`.
    from distributed import Client, LocalCluster

    missing = str(tmp_path / "moved-away.tif")
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        pytest.raises(geoxr.RasterReadError, match=r"moved-away\.tif"),
    ):
        client.submit(geoxr.RasterioSource, missing, pure=False).result()
