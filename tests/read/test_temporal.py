import datetime
import json

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

import geoxr
from geoxr.grid import Window
from geoxr.read.transformers import fill_masked
from geoxr.testing import raise_if_dask_computes


@pytest.fixture(scope="module")
def naip(data_dir):
    d = data_dir / "naip_timeseries_nd"
    return d / "m_4709963_se_14_1_20090818.tif", d / "m_4709963_se_14_1_20200831.tif"


def test_a_time_series_is_no_label_raster(naip):
    # It gave a (1, h, w) mask, or a broadcast ValueError, per window.
    ts = geoxr.TemporalMultiRasterSource(
        [geoxr.RasterioSource(p, channel_order=[0]) for p in naip], times=["2009", "2020"]
    )
    with pytest.raises(geoxr.ClassConfigError, match="time series of 2 dates"):
        geoxr.SemanticSegmentationLabelSource(ts, geoxr.ClassConfig(["a", "b"]))


def test_naip_pair_as_a_time_stack_on_the_first_grid(naip):
    with raise_if_dask_computes():
        ts = geoxr.TemporalMultiRasterSource(
            [geoxr.RasterioSource(p) for p in naip], times=["2009-08-18", "2020-08-31"]
        )
        data = ts.data
    assert data.dims == ("time", "band", "y", "x") and data.shape == (2, 4, 724, 934)
    assert list(data["time"].dt.year.values) == [2009, 2020]
    with rasterio.open(naip[0]) as first:
        assert data.rio.transform() == first.transform and data.rio.crs == first.crs
        window = Window(300, 400, 32, 32)
        np.testing.assert_array_equal(
            ts.read(window).data[0], first.read(window=window.to_rasterio())
        )
    # the 2020 grid is 1 m (0.2 px) off and one row shorter: its last row on the 2009 grid is masked
    last = ts.read(Window(720, 0, 4, 934))
    assert last.mask[1, :, -1].all() and not last.mask[0].any()
    lazy = data[:, :, 300:332, 400:432].values
    np.testing.assert_array_equal(lazy, ts.read(window).data)


def test_dates_with_different_band_counts_are_refused(naip):
    with pytest.raises(geoxr.BandCountError, match=r"same bands, but the sources have \[4, 3\]"):
        geoxr.TemporalMultiRasterSource(
            [
                geoxr.RasterioSource(naip[0]),
                geoxr.RasterioSource(naip[1], channel_order=[0, 1, 2]),
            ],
            times=["2009", "2020"],
        )


def _item(item_id, href, date):
    item = pystac.Item(item_id, None, None, date, {})
    item.add_asset("image", pystac.Asset(str(href), media_type=pystac.MediaType.COG))
    return item


def test_stac_items_from_local_json_make_a_lazy_time_series(tmp_path, naip):
    items = [
        _item("naip-2020", naip[1], datetime.datetime(2020, 8, 31)),
        _item("naip-2009", naip[0], datetime.datetime(2009, 8, 18)),
    ]
    collection = pystac.ItemCollection(items)
    path = tmp_path / "items.json"
    path.write_text(json.dumps(collection.to_dict()))
    loaded = pystac.ItemCollection.from_file(str(path))
    bbox = (486500.0, 5206497.0, 488500.0, 5208497.0)  # EPSG:26914, on 2009 pixel edges
    with raise_if_dask_computes():
        source = geoxr.stac_source(loaded, ["image"], bbox=bbox)
        data = source.data
    assert data.shape == (2, 4, 400, 400)
    assert list(data["time"].dt.year.values) == [2009, 2020]  # sorted by datetime
    assert data.rio.bounds() == bbox
    with rasterio.open(naip[0]) as first:
        window = first.window(*bbox)
        np.testing.assert_array_equal(data[0].values, first.read(window=window))


def test_later_stac_dates_cover_the_first_dates_cropped_grid(naip):
    # Later dates were cropped to the bbox on their own pixels, which can stop short
    # of the first date's edge pixels: they are now read whole onto its grid. Two
    # assets per item: each item is a stack, aligned as one.
    items = []
    for year, path in (("2009", naip[0]), ("2020", naip[1])):
        item = _item(f"naip-{year}", path, datetime.datetime(int(year), 8, 20))
        item.add_asset("again", pystac.Asset(str(path)))
        items.append(item)
    # 4.9 m into a 2009 pixel: the 2009 crop starts 4.9 m west of the bbox, the 2020
    # one (its pixels 1 m apart from 2009's) 0.9 m west, east of the first column's centres.
    bbox = (486504.9, 5206504.9, 488495.1, 5208495.1)
    source = geoxr.stac_source(items, ["image", "again"], bbox=bbox)
    grid = source.grid
    assert grid.bounds == (486500.0, 5206502.0, 488500.0, 5208497.0)
    chip = source.read(source.extent)
    assert chip.shape == (2, 8, 399, 400) and not chip.mask.any()
    expected = np.zeros((4, 399, 400), np.uint8)
    with rasterio.open(naip[1]) as later:
        reproject(
            rasterio.band(later, [1, 2, 3, 4]),
            expected,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            resampling=Resampling.nearest,
        )
    np.testing.assert_array_equal(chip.data[1, :4], expected)
    np.testing.assert_array_equal(chip.data[1, 4:], expected)


def test_stac_times_in_other_time_zones_are_in_utc(naip):
    east = datetime.timezone(datetime.timedelta(hours=5))
    items = [
        _item("later", naip[1], datetime.datetime(2020, 8, 31, 3, tzinfo=east)),  # 22:00 UTC
        _item("earlier", naip[0], datetime.datetime(2020, 8, 30, 23, tzinfo=datetime.UTC)),
    ]
    times = geoxr.stac_source(items, ["image"]).data["time"].values.astype("datetime64[m]")
    assert times.astype(str).tolist() == ["2020-08-30T22:00", "2020-08-30T23:00"]


def test_stac_times_with_and_without_a_time_zone_sort_and_a_swapped_bbox_is_refused(naip):
    # Sorting compared naive with aware datetimes (a raw TypeError); a lat/lon bbox that
    # cannot be projected gave NaN bounds and a raw ValueError.
    items = [
        _item("aware", naip[1], datetime.datetime(2020, 8, 31, tzinfo=datetime.UTC)),
        _item("naive", naip[0], datetime.datetime(2009, 8, 18)),
    ]
    source = geoxr.stac_source(items, ["image"])
    assert list(source.data["time"].dt.year.values) == [2009, 2020]
    with pytest.raises(geoxr.WindowError, match=r"latitudes -99.18 and -99.15, past the poles"):
        geoxr.stac_source(items, ["image"], bbox=(47.01, -99.18, 47.03, -99.15), bbox_crs=4326)


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        # (xmin, xmax, ymin, ymax): read the whole raster, silently.
        ((-99.18, -99.15, 47.01, 47.03), r"past the poles"),
        # left > right: taken across the antimeridian, a crop of the rows alone.
        ((-99.15, 47.01, -99.18, 47.03), r"not \(left, bottom, right, top\) with left < right"),
        ((-99.18, 47.03, -99.15, 47.01), r"bottom < top"),  # a raw GDAL error
        ((-99.18, 47.01, -99.15), r"not \(left, bottom, right, top\)"),
    ],
)
def test_a_stac_bbox_not_in_stac_order_is_refused(naip, bbox, match):
    item = _item("naip", naip[0], datetime.datetime(2009, 8, 18))
    with pytest.raises(geoxr.WindowError, match=match):
        geoxr.stac_source(item, ["image"], bbox=bbox, bbox_crs="EPSG:4326")


def test_a_stac_bbox_across_the_antimeridian_crops_where_it_is(tmp_path):
    # STAC writes west > east for a bbox across 180 degrees: refused after the order check.
    transform = rasterio.transform.from_origin(700000, 200000, 1000, 1000)  # 178.8E to 177.6W
    profile = {"driver": "GTiff", "width": 400, "height": 200, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        tmp_path / "fiji.tif", "w", crs="EPSG:32660", transform=transform, **profile
    ) as dst:
        dst.write(np.ones((1, 200, 400), np.uint8))
    item = _item("fiji", tmp_path / "fiji.tif", datetime.datetime(2020, 1, 1))
    across = geoxr.stac_source(item, ["image"], bbox=(179.9, 0.1, -179.9, 0.3), bbox_crs=4326)
    west = geoxr.stac_source(item, ["image"], bbox=(179.5, 0.1, 179.9, 0.3), bbox_crs=4326)
    assert across.shape == (23, 24) and west.shape == (23, 45)
    assert across.bounds[0] == pytest.approx(west.bounds[2], abs=1000)  # east of 179.9E


def test_a_3d_stac_bbox_and_inputs_of_the_wrong_kind(naip):
    item = _item("naip", naip[0], datetime.datetime(2009, 8, 18))
    flat = geoxr.stac_source(item, ["image"], bbox=(-99.18, 47.01, -99.15, 47.03), bbox_crs=4326)
    # STAC's 3D form, with heights (a raw TypeError before):
    solid = geoxr.stac_source(
        item, ["image"], bbox=(-99.18, 47.01, 0, -99.15, 47.03, 10), bbox_crs=4326
    )
    assert solid.grid == flat.grid and flat.shape == (447, 458)
    with pytest.raises(geoxr.StacAssetError, match=r"one string; .* assets=\['image'\]"):
        geoxr.stac_source(item, "image")  # "no asset ['i', 'm', 'a', 'g', 'e']"
    collection = pystac.Collection("c", "d", pystac.Extent.from_items([item]))
    with pytest.raises(geoxr.ConfigError, match=r"got a Collection. .*get_items\(\)"):
        geoxr.stac_source(collection, ["image"])  # "'Collection' object is not iterable"


def test_stac_item_assets_become_bands(naip):
    item = _item("both", naip[0], datetime.datetime(2009, 8, 18))
    item.add_asset("later", pystac.Asset(str(naip[1])))
    source = geoxr.stac_source(item, ["image", "later"])
    assert source.num_channels == 8 and source.shape == (724, 934)
    with pytest.raises(
        geoxr.StacAssetError, match=r"has no asset \['nir'\]; it has \['image', 'later'\]"
    ):
        geoxr.stac_source(item, ["image", "nir"])
    with pytest.raises(geoxr.WindowError, match="does not overlap"):
        geoxr.stac_source(item, ["image"], bbox=(0, 0, 10, 10))


@pytest.mark.parametrize(
    ("first", "second", "dtype"),
    [
        # the 2020 date's own nodata (its most common band-1 value) is not the stack's (0)
        ({}, {"nodata": 64}, "uint8"),
        # a uint8 date in a float stack: its masked pixels are NaN, not its nodata
        ({"nodata": 109}, {"raster_transformers": [geoxr.CastTransformer("float32")]}, "float32"),
    ],
)
def test_lazy_data_masks_each_date_as_read_does(naip, first, second, dtype):
    ts = geoxr.TemporalMultiRasterSource(
        [geoxr.RasterioSource(naip[0], **first), geoxr.RasterioSource(naip[1], **second)],
        times=["2009-08-18", "2020-08-31"],
    )
    chip = ts.read(ts.extent)
    data = ts.data
    assert data.dtype == chip.dtype == np.dtype(dtype)
    assert (
        np.ma.getmaskarray(chip).sum() > 19849
    )  # the nodata pixels and the 2020 row off the grid
    np.testing.assert_array_equal(data.values, fill_masked(chip, ts.data_nodata))
    if dtype == "uint8":
        assert data.rio.nodata == ts.nodata == 0
    else:
        assert np.isnan(data.rio.nodata) and np.isnan(data.values[0][chip.mask[0]]).all()


def test_times_that_are_not_dates_are_refused_and_time_zones_are_utc(naip):
    # pandas' own ValueError (and a mixed-time-zone one) came out raw.
    sources = [geoxr.RasterioSource(p) for p in naip]
    with pytest.raises(geoxr.ConfigError, match=r"Times \[2020\] .*a year as '2020', not 2020"):
        geoxr.TemporalMultiRasterSource(sources, times=["2009", 2020])  # 2020 ns after 1970
    with pytest.raises(geoxr.ConfigError, match=r"Times \['not a date', None\] .* are not dates"):
        geoxr.TemporalMultiRasterSource(sources + sources[:1], times=["2009", "not a date", None])
    east = datetime.timezone(datetime.timedelta(hours=5))
    ts = geoxr.TemporalMultiRasterSource(
        sources,
        times=[datetime.datetime(2009, 8, 18), datetime.datetime(2020, 8, 31, 3, tzinfo=east)],
    )
    assert ts.data["time"].values.astype("datetime64[h]").astype(str).tolist() == [
        "2009-08-18T00",
        "2020-08-30T22",
    ]


def test_an_unknown_bbox_crs_is_a_geoxr_error(naip):
    item = _item("naip-2009", naip[0], datetime.datetime(2009, 8, 18))
    with pytest.raises(geoxr.ConfigError, match="bbox_crs 'EPSG:0' is not a CRS"):
        geoxr.stac_source(item, ["image"], bbox=(-99.18, 47.01, -99.15, 47.03), bbox_crs="EPSG:0")
