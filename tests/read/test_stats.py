"""Tests of geoxr.read.stats: band statistics as one dask reduction, normalisation."""

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr

import geoxr
from geoxr import (
    BandStats,
    ClassConfig,
    EmptyBandError,
    GeoDataset,
    RasterioSource,
    SemanticSegmentationSlidingWindowGeoDataset,
    Window,
    compute_band_stats,
    make_ss_scene,
)
from geoxr.testing import raise_if_dask_computes


def numpy_band_stats(path):
    """Per-band mean and std (ddof=0) of the valid pixels, nodata excluded band by band."""
    with rasterio.open(path) as ds:
        values, nodata = ds.read().astype(np.float64), ds.nodata
    means, stds = [], []
    for band in values:
        valid = band[band != nodata] if nodata is not None else band.ravel()
        means.append(valid.mean())
        stds.append(valid.std())
    return np.array(means), np.array(stds)


@pytest.mark.parametrize("path_fixture", ["nc_stack", "rgb_byte", "sn4_image"])
def test_band_stats_equal_numpy_over_valid_pixels(request, path_fixture):
    path = request.getfixturevalue(path_fixture)
    means, stds = numpy_band_stats(path)
    stats = compute_band_stats(RasterioSource(path).data)
    np.testing.assert_allclose(stats.means, means, rtol=1e-4)
    np.testing.assert_allclose(stats.stds, stds, rtol=1e-4)


def test_band_stats_single_dask_compute(nc_stack):
    data = RasterioSource(nc_stack, chunk_size=256).data
    assert data.data.npartitions > 1
    with raise_if_dask_computes(max_computes=1) as counter:
        stats = compute_band_stats(data)
    assert counter.count == 1
    assert len(stats.means) == len(stats.stds) == 6


@pytest.mark.parametrize("chunks", [{"y": 100, "x": 100}, {"y": (7, 400, 36), "x": 250}])
def test_band_stats_chunk_invariant(nc_stack, chunks):
    reference = compute_band_stats(RasterioSource(nc_stack).data)
    stats = compute_band_stats(RasterioSource(nc_stack).data.chunk(chunks))
    np.testing.assert_allclose(stats.means, reference.means, rtol=1e-12)
    np.testing.assert_allclose(stats.stds, reference.stds, rtol=1e-12)


# A block with no valid pixel made numpy warn "All-NaN slice" in MinMaxTransformer.from_data.
@pytest.mark.filterwarnings("error")
def test_band_stats_nodata_argument(rgb_byte):
    data = RasterioSource(rgb_byte).data
    with rasterio.open(rgb_byte) as ds:
        red = ds.read(1).astype(np.float64)
    # 0 is the file's nodata; 255 is ignored as well (as the docstring says, and as a
    # source's statistics do): the DataArray's own nodata was dropped for it.
    stats = compute_band_stats(data, nodata=255)
    valid = red[(red != 255) & (red != 0)]
    assert stats.means[0] == pytest.approx(valid.mean(), rel=1e-6)
    assert stats.stds[0] == pytest.approx(valid.std(), rel=1e-6)
    assert compute_band_stats(RasterioSource(rgb_byte), nodata=255) == pytest.approx(stats)
    # Without a nodata of its own, 0s count.
    counted = compute_band_stats(data.rio.write_nodata(None), nodata=255)
    assert counted.means[0] == pytest.approx(red[red != 255].mean(), rel=1e-6)
    # A (y, x) raster is one band; MinMax ranges leave out both values too.
    assert compute_band_stats(data[0], nodata=255).means == pytest.approx(stats.means[:1])
    minmax = geoxr.MinMaxTransformer.from_data(data, nodata=255)
    assert (minmax.mins[0], minmax.maxs[0]) == (valid.min(), valid.max())
    with pytest.raises(geoxr.EmptyBandError, match=r"Band\(s\) \[0, 1, 2\] .* no valid pixel"):
        geoxr.MinMaxTransformer.from_data(data.where(data < 0))


def test_band_stats_constant_band_floor():
    data = xr.DataArray(np.full((1, 4, 4), 3.0), dims=("band", "y", "x"))
    stats = compute_band_stats(data, min_std=0.5)
    assert stats.means == (3.0,) and stats.stds == (0.5,)


def test_normalize_stats_dataset(nc_stack, nc_strata, nc_class_config):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    ds = SemanticSegmentationSlidingWindowGeoDataset(scene, size=64, stride=64, normalize="stats")
    means, stds = numpy_band_stats(nc_stack)
    assert isinstance(ds.normalize, BandStats)
    np.testing.assert_allclose(ds.normalize.means, means, rtol=1e-4)
    np.testing.assert_allclose(ds.normalize.stds, stds, rtol=1e-4)
    window = Window(0, 0, 64, 64)  # holds the nodata collar
    image, _ = ds[0]
    assert ds.windows[0] == window
    with rasterio.open(nc_stack) as src:
        raw = src.read(window=window.to_rasterio()).astype(np.float64)
    invalid = (raw == -99999.0).any(axis=0)
    assert invalid.any() and (~invalid).any()
    expected = (raw - means[:, None, None]) / stds[:, None, None]
    expected[:, invalid] = 0.0
    assert image.dtype == torch.float32
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert (image[:, torch.from_numpy(invalid)] == 0).all()


def test_normalize_with_given_stats(nc_stack):
    scene = make_ss_scene(nc_stack, class_config=ClassConfig(["a"]))
    stats = BandStats(means=(1.0,) * 6, stds=(2.0,) * 6)
    window = Window(200, 200, 16, 16)  # all valid
    image, _ = GeoDataset(scene, [window], normalize=stats)[0]
    with rasterio.open(nc_stack) as src:
        raw = src.read(window=window.to_rasterio())
    np.testing.assert_allclose(image.numpy(), (raw - 1.0) / 2.0, rtol=1e-6)


def test_band_stats_normalize_and_dict():
    stats = BandStats(means=(10.0, 20.0), stds=(2.0, 4.0))
    chip = np.array([[[12.0, 0.0]], [[16.0, 0.0]]])
    out = stats.normalize(chip, valid=np.array([[True, False]]))
    assert out.dtype == np.float32
    assert out.tolist() == [[[1.0, 0.0]], [[-1.0, 0.0]]]
    assert BandStats.from_dict(stats.to_dict()) == stats
    with pytest.raises(ValueError, match="Chip has 3 bands but the stats have 2"):
        stats.normalize(np.zeros((3, 1, 1)))


@pytest.fixture
def internally_masked(tmp_path):
    """A uint8 GeoTIFF with no nodata value but a GDAL internal mask over a 0-valued collar."""
    rng = np.random.default_rng(0)
    values = rng.integers(100, 201, (3, 120, 90), dtype=np.uint8)
    valid = np.zeros((120, 90), bool)
    valid[10:100, 20:90] = True
    values[:, ~valid] = 0
    path = tmp_path / "masked.tif"
    profile = dict(driver="GTiff", width=90, height=120, count=3, dtype="uint8", crs="EPSG:32616")
    transform = rasterio.transform.from_origin(733600, 3725140, 0.5, 0.5)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile, transform=transform, tiled=True) as dst:
            dst.write(values)
            dst.write_mask(valid.astype(np.uint8) * 255)
    kept = values[:, valid].astype(np.float64)
    return path, kept.mean(axis=1), kept.std(axis=1)


def test_band_stats_of_a_source_leave_out_its_gdal_mask(internally_masked):
    path, means, stds = internally_masked
    source = RasterioSource(path, chunk_size=32)
    assert source.nodata is None and source.data.rio.nodata is None
    with raise_if_dask_computes(max_computes=1):
        stats = compute_band_stats(source)
    np.testing.assert_allclose(stats.means, means, rtol=1e-12)
    np.testing.assert_allclose(stats.stds, stds, rtol=1e-12)
    # the lazy data cannot tell the masked 0s from data: its statistics count them
    assert max(compute_band_stats(source.data).means) < 0.7 * min(means)
    scene = make_ss_scene(path, class_config=ClassConfig(["a"]))
    ds = GeoDataset(scene, [Window(0, 0, 16, 16)], normalize="stats")
    assert ds.normalize == stats


@pytest.mark.parametrize("path_fixture", ["nc_stack", "rgb_byte"])
def test_band_stats_of_a_source_equal_those_of_its_data(request, path_fixture):
    source = RasterioSource(request.getfixturevalue(path_fixture), chunk_size=256)
    means, stds = numpy_band_stats(source.uris[0])
    stats = compute_band_stats(source)
    np.testing.assert_allclose(stats.means, means, rtol=1e-9)
    np.testing.assert_allclose(stats.stds, stds, rtol=1e-9)


def test_a_band_without_valid_pixels_has_no_stats(rgb_byte):
    data = xr.DataArray(np.full((2, 4, 4), np.nan), dims=("band", "y", "x"), name="dark")
    data[0, 1, 1] = 3.0
    with pytest.raises(EmptyBandError, match=r"Band\(s\) \[1\] \(0-based\) of DataArray 'dark'"):
        compute_band_stats(data)
    # a corner of the scene's collar, where every band is nodata (0)
    source = RasterioSource(rgb_byte, bbox=(0, 0, 20, 20))
    with pytest.raises(EmptyBandError, match=r"Band\(s\) \[0, 1, 2\] .*RGB\.byte\.tif"):
        compute_band_stats(source)


def test_band_stats_of_bands_under_another_name_are_refused(nc_stack):
    # A (channel, y, x) array was taken for one band: every band pooled into one mean.
    data = RasterioSource(nc_stack).data.rename(band="channel")
    with pytest.raises(geoxr.BandCountError, match=r"data\.rename\(channel='band'\)"):
        compute_band_stats(data)

    # One band over dates, (time, y, x), is one band pooled over time, as before.
    series = xr.DataArray(np.arange(24.0).reshape(2, 3, 4), dims=("time", "y", "x"))
    assert compute_band_stats(series).means == pytest.approx((11.5,))
