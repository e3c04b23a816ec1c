import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

import geoxr
from geoxr.grid import Window
from geoxr.testing import raise_if_dask_computes


def test_nc_stack_plus_label_raster_with_another_crs_code(nc_stack, nc_strata):
    image, labels = geoxr.RasterioSource(nc_stack), geoxr.RasterioSource(nc_strata)
    assert labels.crs.to_epsg() == 3358 and image.crs.to_epsg() == 32119
    with raise_if_dask_computes():
        stack = geoxr.MultiRasterSource([image, labels])
        data = stack.data
    assert data.shape == (7, 443, 489) and data.dtype == np.float32
    assert data.rio.crs == image.crs and data.rio.transform() == image.transform
    window = Window(100, 150, 64, 64)
    chip = stack.read(window)
    with rasterio.open(nc_stack) as a, rasterio.open(nc_strata) as b:
        np.testing.assert_array_equal(chip.data[:6], a.read(window=window.to_rasterio()))
        np.testing.assert_array_equal(chip.data[6], b.read(1, window=window.to_rasterio()))
    np.testing.assert_array_equal(
        np.nan_to_num(data[:, 100:164, 150:214].values, nan=-99999),
        np.asarray(chip.filled(-99999)),
    )
    picked = geoxr.MultiRasterSource([image, labels], channel_order=[6, 3])
    np.testing.assert_array_equal(picked.read(window).data, chip.data[[6, 3]])


def _write(path, values, crs, transform, nodata):
    profile = dict(
        driver="GTiff",
        height=values.shape[1],
        width=values.shape[2],
        count=values.shape[0],
        dtype=values.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values)
    return path


def test_other_resolution_and_extent_is_warped_per_window(tmp_path, rgb_byte):
    with rasterio.open(rgb_byte) as src:
        values = src.read()
        crs, transform = src.crs, src.transform
    # band 1 at half resolution, covering only the top-left quarter, as uint16 with its own nodata
    coarse = Affine(transform.a * 2, 0, transform.c, 0, transform.e * 2, transform.f)
    small = np.zeros((1, values.shape[1] // 4, values.shape[2] // 4), np.uint16)
    reproject(
        values[:1],
        small,
        src_transform=transform,
        src_crs=crs,
        dst_transform=coarse,
        dst_crs=crs,
        resampling=Resampling.nearest,
        src_nodata=0,
        dst_nodata=65535,
    )
    path = _write(tmp_path / "coarse.tif", small, crs, coarse, 65535)
    stack = geoxr.MultiRasterSource([geoxr.RasterioSource(rgb_byte), geoxr.RasterioSource(path)])
    assert stack.dtype == np.uint16 and stack.nodata == 0.0
    chip = stack.read(Window(400, 400, 100, 100))
    assert chip.mask[3].all()  # outside the coarse raster's extent: masked
    inside = stack.read(Window(100, 100, 50, 50))
    expected = np.kron(small[0, 50:75, 50:75], np.ones((2, 2), np.uint16))
    np.testing.assert_array_equal(np.where(inside.mask[3], 65535, inside.data[3]), expected)
    lazy = stack.data[3, 100:150, 100:150].values
    np.testing.assert_array_equal(
        lazy, np.where(inside.mask[3], 0, inside.data[3])
    )  # .nodata = primary's


def test_disjoint_extents_are_refused(nc_stack, sn4_image):
    with pytest.raises(geoxr.CRSMismatchError, match=r"and the primary grid .* do not overlap"):
        geoxr.MultiRasterSource([geoxr.RasterioSource(nc_stack), geoxr.RasterioSource(sn4_image)])


def test_xarray_source_on_another_grid_is_refused(nc_stack, sn4_image):
    other = geoxr.XarraySource(geoxr.RasterioSource(nc_stack).data.isel(x=slice(0, 100)))
    with pytest.raises(geoxr.CRSMismatchError, match="reproject_match"):
        geoxr.MultiRasterSource([geoxr.RasterioSource(nc_stack), other])


# Its primary, a bare grid of zeros, declares no nodata (the stack warns of .data).
@pytest.mark.filterwarnings("ignore:The stack's primary source:geoxr.GeoxrWarning")
def test_a_declared_nodata_is_left_out_of_warped_resampling(tmp_path, rgb_byte):
    # GDAL was told only the file's own nodata: a file without one, read with
    # nodata=0 and warped bilinearly, averaged its 0 collar into valid edge pixels.
    with rasterio.open(rgb_byte) as src:
        band, profile = src.read(1), src.profile
    profile.update(count=1, nodata=None)
    untagged = tmp_path / "untagged.tif"
    with rasterio.open(untagged, "w", **profile) as dst:
        dst.write(band, 1)
    source = geoxr.RasterioSource(untagged, nodata=0)
    shifted = geoxr.Grid(
        source.crs,
        source.transform * Affine.translation(0.5, 0.5),
        (source.shape[0] - 1, source.shape[1] - 1),
    )
    primary = geoxr.XarraySource(shifted.wrap(np.ones((1, *shifted.shape), np.uint8)))
    multi = geoxr.MultiRasterSource([primary, source], resampling="bilinear")
    chip = multi.read(multi.extent)[1]
    expected = np.zeros(shifted.shape, np.float32)
    reproject(
        band.astype(np.float32),
        expected,
        src_transform=source.transform,
        src_crs=source.crs,
        dst_transform=shifted.transform,
        dst_crs=shifted.crs,
        resampling=Resampling.bilinear,
        src_nodata=0,
        dst_nodata=0,
    )
    np.testing.assert_array_equal(~np.ma.getmaskarray(chip), expected > 0)
    valid = expected > 0
    assert np.abs(chip.data[valid].astype(np.float32) - expected[valid]).max() <= 1


def _crop_file(path, src, window, nodata="keep"):
    """``window`` of raster ``src`` written as a GeoTIFF of its own (the crop's reference)."""
    with rasterio.open(src) as ds:
        values = ds.read(window=window.to_rasterio())
        transform = ds.window_transform(window.to_rasterio())
        kept = ds.nodata if nodata == "keep" else nodata
        return _write(path, values, ds.crs, transform, kept)


# Its primary, a bare grid of zeros, declares no nodata (the stack warns of .data).
@pytest.mark.filterwarnings("ignore:The stack's primary source:geoxr.GeoxrWarning")
@pytest.mark.parametrize(
    ("kind", "declared", "resampling"),
    [
        ("file", None, "nearest"),
        ("mosaic", None, "nearest"),
        ("untagged", None, "bilinear"),
        ("untagged", 0, "bilinear"),
    ],
    ids=["file-nodata", "mosaic", "no-nodata", "declared-nodata"],
)
def test_a_cropped_source_keeps_its_crop_when_warped(
    tmp_path, rgb_byte, rgb_byte_halves, kind, declared, resampling
):
    # MultiRasterSource warped the whole file of a bbox-cropped source: pixels outside
    # the crop came back valid. It now reads as a file holding only the crop would.
    path = rgb_byte
    if kind == "untagged":
        with rasterio.open(rgb_byte) as src:
            path = _write(tmp_path / "untagged.tif", src.read(), src.crs, src.transform, None)
    crop = Window(200, 250, 300, 280)  # across the halves' seam (column 395)
    reference = _crop_file(tmp_path / "crop.tif", path, crop)
    uris = rgb_byte_halves if kind == "mosaic" else path
    source = geoxr.RasterioSource(uris, bbox=crop, nodata=declared)
    full = geoxr.RasterioSource(uris)
    shifted = geoxr.Grid(full.crs, full.transform * Affine.translation(0.5, 0.5), (700, 780))
    primary = geoxr.XarraySource(shifted.wrap(np.ones((1, *shifted.shape), np.uint8)))
    stack = geoxr.MultiRasterSource([primary, source], resampling=resampling)
    chip = stack.read(stack.extent)[1:]
    expected = geoxr.RasterioSource(reference, nodata=declared).on_grid(
        shifted, resampling=resampling
    )
    want = expected.read(expected.extent)
    np.testing.assert_array_equal(np.ma.getmaskarray(chip), np.ma.getmaskarray(want))
    difference = np.abs(chip.filled(0).astype(int) - want.filled(0).astype(int)).max()
    assert difference == 0 if resampling == "nearest" else difference <= 1  # GDAL's rounding
    valid = ~np.ma.getmaskarray(chip[0])
    rows, cols = np.nonzero(valid)
    # Inside the crop only (the grid is shifted by half a pixel), and most of it.
    assert rows.min() >= crop.ymin - 1 and rows.max() < crop.ymax
    assert cols.min() >= crop.xmin - 1 and cols.max() < crop.xmax
    assert valid.sum() > 0.9 * crop.height * crop.width
    # The lazy .data masks the same pixels (an integer stack: with the primary's nodata, 0).
    np.testing.assert_array_equal(stack.data.values[1:], chip.filled(0))


def test_a_grid_of_the_sources_own_pixels_is_read_as_a_crop(nc_stack):
    source = geoxr.RasterioSource(nc_stack, bbox=(50, 60, 400, 450))
    inner = source.grid.crop(Window(10, 20, 64, 96))
    aligned = geoxr.MultiRasterSource(
        [geoxr.XarraySource(inner.wrap(np.zeros((1, 64, 96)))), source]
    )
    member = aligned.sources[1]
    assert member.target_grid is None and member.grid == inner  # no warp
    with rasterio.open(nc_stack) as ds:
        want = ds.read(window=rasterio.windows.Window(80, 60, 96, 64))
    np.testing.assert_array_equal(aligned.read(aligned.extent).data[1:], want)


def test_a_crop_of_a_warped_grid_is_not_warped_again(nc_stack, nc_strata):
    stack = geoxr.RasterioSource(nc_stack)
    warped = geoxr.RasterioSource(nc_strata, target_grid=stack.grid, bbox=(10, 10, 200, 200))
    # On its own pixels it is cropped further; onto another grid it cannot keep its crop.
    inner = warped.on_grid(warped.grid.crop(Window(5, 5, 50, 50)))
    np.testing.assert_array_equal(inner.read(inner.extent), warped.read(Window(5, 5, 50, 50)))
    half_pixel = geoxr.Grid(stack.crs, stack.transform * Affine.translation(0.5, 0.5), (99, 99))
    with pytest.raises(geoxr.ConfigError, match=r"Crop the file itself instead \(file_bbox"):
        warped.on_grid(half_pixel)
    with pytest.raises(geoxr.ConfigError, match=r"no target_grid was given\. Use bbox"):
        geoxr.RasterioSource(nc_strata, file_bbox=(0, 0, 10, 10))


def test_a_warped_read_keeps_the_files_own_mask_whatever_nodata_is_declared(rgb_byte_masked):
    # GDAL's warper, told a declared nodata, ignores the file's internal mask: with
    # nodata=250, pixels the mask hides came back valid once warped (and the crop's VRT
    # took the file's mask only without a nodata value).
    path, _ = rgb_byte_masked
    for declared in (None, 250):
        for crop in (Window(100, 250, 400, 200), None):
            source = geoxr.RasterioSource(path, bbox=crop, nodata=declared)
            shape = (source.shape[0] - 10, source.shape[1] - 10)
            half = geoxr.Grid(source.crs, source.transform * Affine.translation(0.5, 0.5), shape)
            masked = np.ma.getmaskarray(source.on_grid(half).read(Window(0, 0, *shape)))[0]
            left = 0 if crop is None else crop.xmin
            # Pixel centres on file columns 300-339, half a pixel on.
            assert masked[:, 299 - left : 339 - left].all()
            assert masked[:, 259 - left : 289 - left].mean() < 0.01  # but a pixel of 250


def test_a_crop_made_to_align_a_source_is_not_kept_on_another_grid(nc_stack, nc_strata):
    # A source aligned onto a crop of its own pixels was read as that crop, which was
    # then kept like a crop the user asked for: on the full grid it was masked outside.
    cropped = geoxr.RasterioSource(nc_stack, bbox=(50, 60, 400, 450))
    stack = geoxr.MultiRasterSource(
        [geoxr.RasterioSource(nc_strata), cropped], primary_source_idx=1
    )
    full = stack.on_grid(geoxr.RasterioSource(nc_stack).grid)
    chip = full.read(full.extent)
    strata = geoxr.RasterioSource(nc_strata).read(geoxr.RasterioSource(nc_strata).extent)
    np.testing.assert_array_equal(np.ma.getmaskarray(chip[0]), np.ma.getmaskarray(strata[0]))
    stack_mask = np.ma.getmaskarray(chip[1:]).all(axis=0)
    assert stack_mask[:50].all() and not stack_mask[100:300, 100:400].any()  # the user's crop


def test_integer_data_of_a_primary_without_nodata_warns_of_other_sources_masks(tmp_path, rgb_byte):
    # The primary declares no nodata: the pixels a uint16 band's nodata masks came out of
    # .data as valid zeros (rio.nodata None), and its band statistics counted them, silently.
    # Borrowing that band's nodata would turn the primary's own valid values into nodata.
    with rasterio.open(rgb_byte) as ds:
        profile, rgb = ds.profile, ds.read()
    with rasterio.open(tmp_path / "rgb.tif", "w", **{**profile, "nodata": None}) as dst:
        dst.write(rgb)
    band = rgb[:1].astype(np.uint16) * 10
    band[rgb[:1] == 0] = 65535
    u16 = {**profile, "dtype": "uint16", "nodata": 65535, "count": 1}
    with rasterio.open(tmp_path / "u16.tif", "w", **u16) as dst:
        dst.write(band)
    second = geoxr.RasterioSource(tmp_path / "u16.tif")
    with pytest.warns(geoxr.GeoxrWarning, match=r"declares no nodata, so integer \.data holds"):
        stack = geoxr.MultiRasterSource([geoxr.RasterioSource(tmp_path / "rgb.tif"), second])
    assert stack.nodata is None and stack.read(stack.extent).mask[3].any()  # chips: masked
    # Declared on the primary, .data marks them.
    declared = geoxr.MultiRasterSource(
        [geoxr.RasterioSource(tmp_path / "rgb.tif", nodata=65535), second]
    )
    masked = declared.read(declared.extent).mask[3]
    data = declared.data
    assert data.rio.nodata == 65535 and (data.values[3][masked] == 65535).all()
    valid = band[0][band[0] != 65535]
    assert geoxr.compute_band_stats(data).means[3] == pytest.approx(valid.mean(), rel=1e-6)


def test_a_time_series_in_a_band_stack_is_refused(data_dir):
    # Every read failed with numpy's "all the input arrays must have same number of dimensions".
    d = data_dir / "naip_timeseries_nd"
    paths = [d / "m_4709963_se_14_1_20090818.tif", d / "m_4709963_se_14_1_20200831.tif"]
    series = geoxr.TemporalMultiRasterSource(
        [geoxr.RasterioSource(p) for p in paths], times=["2009-08-18", "2020-08-31"]
    )
    with pytest.raises(geoxr.ConfigError, match=r"give time series .*TemporalMultiRasterSource"):
        geoxr.MultiRasterSource([geoxr.RasterioSource(paths[0]), series])
