"""Tests of geoxr.read.raster (RasterioSource) and the shared RasterSource behaviour, on real files."""

import pickle

import numpy as np
import pytest
import rasterio
import rasterio.windows
from affine import Affine
from rasterio.enums import ColorInterp

import geoxr
from geoxr import CastTransformer, Grid, RasterioSource, Window
from geoxr.read._shared_tiles import SharedTileCache
from geoxr.testing import raise_if_dask_computes

# (fixture, dtype, nodata, bands) of the three real rasters read here.
RASTERS = {
    "nc_stack": ("float32", -99999.0, 6),
    "rgb_byte": ("uint8", 0.0, 3),
    "sn4_image": ("uint16", 0.0, 1),
}
WINDOWS = [
    Window(0, 0, 32, 48),
    Window(100, 150, 64, 64),
    Window(300, 5, 17, 129),
    Window(0, 0, 443, 489),  # the whole NC scene; a crop of the others
]


def rasterio_read(path, window, indexes=None):
    with rasterio.open(path) as ds:
        return ds.read(indexes, window=window.to_rasterio())


def rasterio_all(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.nodata


@pytest.fixture(params=sorted(RASTERS))
def raster(request):
    """(path, dtype, nodata, band count) of each real raster."""
    return (request.getfixturevalue(request.param), *RASTERS[request.param])


# ---------------------------------------------------------------------------- read(window)


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_read_equals_rasterio(raster, window):
    path, dtype, nodata, count = raster
    src = RasterioSource(path)
    assert (src.dtype, src.nodata, src.num_channels) == (np.dtype(dtype), nodata, count)
    chip = src.read(window)
    expected = rasterio_read(path, window)
    assert isinstance(chip, np.ma.MaskedArray)
    assert chip.dtype == np.dtype(dtype) and chip.shape == (count, *window.shape)
    np.testing.assert_array_equal(chip.data, expected)
    np.testing.assert_array_equal(np.ma.getmaskarray(chip), expected == nodata)
    np.testing.assert_array_equal(src.nodata_mask(window), (expected == nodata).any(axis=0))


@pytest.mark.parametrize(
    "window",
    [*WINDOWS, Window(430, 470, 32, 32), Window(-10, -7, 20, 30), Window(900, 900, 8, 8)],
    ids=str,
)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "float16", ">f4", ">i8"])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # -99999
def test_read_into_gives_what_read_gives(raster, window, dtype):
    # GDAL casts straight into `out` where it holds the file's values exactly (uint8
    # and uint16 into any of these, float32 into float32 and float64); elsewhere the
    # chip is read and cast.
    path, _, nodata, count = raster
    src = RasterioSource(path)
    chip = src.read(window)
    out = np.full((count, *window.shape), 7, dtype)
    invalid = src.read_into(window, out)
    np.testing.assert_array_equal(out, chip.data.astype(dtype))
    masked = np.ma.getmaskarray(chip).any(axis=0)
    assert masked.any() == (invalid is not None)
    if invalid is not None:
        np.testing.assert_array_equal(invalid, masked)
    inner = window.intersection(src.extent)
    if inner is not None:  # the real values: rasterio's, nodata where the file says
        rows, cols = inner.shift(-window.ymin, -window.xmin).slices
        expected = rasterio_read(path, inner)
        np.testing.assert_array_equal(out[:, rows, cols], expected.astype(dtype))
        np.testing.assert_array_equal(masked[rows, cols], (expected == nodata).any(axis=0))


@pytest.mark.parametrize("nodata", [0.5, -1, 256, float("nan")])
def test_read_into_a_wider_dtype_masks_no_value_a_uint8_file_cannot_hold(rgb_byte, nodata):
    # Compared in float32, nodata 0.5 or 256 must not match a cast value.
    src = RasterioSource(rgb_byte, nodata=nodata)
    window = Window(100, 150, 64, 64)
    out = np.empty((3, 64, 64), np.float32)
    assert src.read_into(window, out) is None
    np.testing.assert_array_equal(out, rasterio_read(rgb_byte, window))
    assert not np.ma.getmaskarray(src.read(window)).any()


def test_read_into_applies_transformers_and_reads_through_the_tile_cache(nc_stack):
    window = Window(220, 0, 100, 300)  # across four 256 px tiles, nodata on the left
    plain = RasterioSource(nc_stack, channel_order=[4, 1])
    cast = RasterioSource(
        nc_stack, channel_order=[4, 1], raster_transformers=[CastTransformer("uint8")]
    )
    cached = RasterioSource(nc_stack, channel_order=[4, 1])
    cached.tile_cache = SharedTileCache(64 << 20)
    for src in (plain, cast, cached, cached):  # cached twice: decoded, then from the cache
        out = np.empty((2, 100, 300), np.float64)
        invalid = src.read_into(window, out)
        chip = src.read(window)
        np.testing.assert_array_equal(out, chip.data)
        np.testing.assert_array_equal(invalid, np.ma.getmaskarray(chip).any(axis=0))
    assert cast.read(window).dtype == np.uint8 and invalid.sum() > 0


def test_read_into_through_a_vrt_gives_what_read_gives(rgb_byte, rgb_byte_halves):
    # A VRT (a mosaic, a warp) fills and resamples in the buffer's dtype: a fractional
    # nodata read into float32 was 0.5 where read() gives the uint8 file's 1, and
    # bilinear values kept fractions read() rounds.
    grid = RasterioSource(rgb_byte).grid
    half_off = Grid(grid.crs, grid.transform * Affine.translation(0.5, 0.3), (359, 395))
    mosaic = RasterioSource(rgb_byte_halves, nodata=0.5)
    warped = RasterioSource(rgb_byte, target_grid=half_off, resampling="bilinear", nodata=0.5)
    for source, window in ((mosaic, Window(0, 0, 8, 8)), (warped, Window(119, 131, 32, 32))):
        out = np.empty((3, *window.shape), np.float32)
        invalid = source.read_into(window, out)
        chip = source.read(window)
        np.testing.assert_array_equal(out, chip.data.astype(np.float32))
        masked = np.ma.getmaskarray(chip).any(axis=0)
        assert (invalid is None and not masked.any()) or (invalid == masked).all()


def test_read_into_masks_what_the_files_own_mask_hides(rgb_byte_masked):
    path, values = rgb_byte_masked
    out = np.empty((3, 50, 100), np.float32)
    invalid = RasterioSource(path).read_into(Window(200, 280, 50, 100), out)
    np.testing.assert_array_equal(out, values[:, 200:250, 280:380])
    assert invalid[:, 20:60].all() and not invalid[:, :20].any() and not invalid[:, 60:].any()


def test_an_alpha_band_masks_the_others_and_is_no_channel(tmp_path, rgb_byte):
    # As Raster Vision reads RGBA: the alpha band was read as a fourth channel.
    with rasterio.open(rgb_byte) as src:
        profile, rgb = src.profile | {"count": 4, "nodata": None}, src.read()
    alpha = np.where((rgb == 0).all(axis=0), 0, 255).astype(np.uint8)
    path = tmp_path / "rgba.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.concatenate([rgb, alpha[None]]))
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    src = RasterioSource(path)
    assert src.num_channels == 3 and src.data["band"].values.tolist() == [1, 2, 3]
    window = Window(0, 0, 200, 300)  # the collar and the image
    chip = src.read(window)
    np.testing.assert_array_equal(chip.data, rgb[:, :200, :300])
    np.testing.assert_array_equal(np.ma.getmaskarray(chip).any(axis=0), alpha[:200, :300] == 0)
    assert 0 < (alpha[:200, :300] == 0).mean() < 1
    assert RasterioSource(path, channel_order=[3]).read(window).data[0].max() == 255
    # A mosaic of its halves, as the file (the mosaic's VRT keeps the bands' colours).
    halves = []
    with rasterio.open(path) as whole:
        for name, box in (
            ("left", rasterio.windows.Window(0, 0, 400, 718)),
            ("right", rasterio.windows.Window(400, 0, 391, 718)),
        ):
            halves.append(tmp_path / f"{name}.tif")
            transform = rasterio.windows.transform(box, whole.transform)
            with rasterio.open(
                halves[-1], "w", **profile | {"width": box.width, "transform": transform}
            ) as dst:
                dst.write(whole.read(window=box))
                dst.colorinterp = whole.colorinterp
    mosaic = RasterioSource(halves)
    assert mosaic.num_channels == 3
    np.testing.assert_array_equal(mosaic.read(window).data, chip.data)
    np.testing.assert_array_equal(
        np.ma.getmaskarray(mosaic.read(window)), np.ma.getmaskarray(chip)
    )
    # With a nodata value GDAL masks by it, not by the alpha band: that stays a channel.
    with rasterio.open(path, "r+") as dst:
        dst.nodata = 0
    assert RasterioSource(path).num_channels == 4


def test_raster_visions_get_chip_and_indexing_give_channels_last(rgb_byte):
    src = RasterioSource(rgb_byte)
    window = Window(100, 150, 64, 32)
    expected = np.moveaxis(rasterio_read(rgb_byte, window), 0, -1)
    np.testing.assert_array_equal(src.get_chip(window), expected)
    np.testing.assert_array_equal(src[window], expected)
    np.testing.assert_array_equal(src[100:164, 150:182], expected)
    np.testing.assert_array_equal(src[:, :].shape, (718, 791, 3))
    edge = src.get_chip(Window(700, 780, 32, 32))  # padded with 0 past the edge
    assert edge.shape == (32, 32, 3) and not edge[18:].any()
    with pytest.raises(geoxr.WindowError, match="two slices of rows and columns"):
        src[0:10:2, 0:10]


def test_nc_nodata_is_per_band(nc_stack):
    src = RasterioSource(nc_stack)
    mask = np.ma.getmaskarray(src.read(src.extent))
    # README: bands 1-5 have 33,209 nodata pixels, band 6 (ETM+ band 7) 81,535.
    assert mask.sum(axis=(1, 2)).tolist() == [33209] * 5 + [81535]
    assert src.nodata_mask(src.extent).sum() == 81535


@pytest.mark.parametrize(
    "window",
    [Window(430, 470, 32, 32), Window(-10, -7, 20, 30), Window(-5, 100, 460, 16)],
    ids=str,
)
def test_read_past_edge_is_padded_and_masked(nc_stack, window):
    src = RasterioSource(nc_stack)
    chip = src.read(window)
    assert chip.shape == (6, *window.shape)
    inner = window.intersection(src.extent)
    rows = slice(inner.ymin - window.ymin, inner.ymax - window.ymin)
    cols = slice(inner.xmin - window.xmin, inner.xmax - window.xmin)
    outside = np.ones(window.shape, bool)
    outside[rows, cols] = False
    expected = rasterio_read(nc_stack, inner)
    np.testing.assert_array_equal(chip.data[:, rows, cols], expected)
    np.testing.assert_array_equal(chip.mask[:, rows, cols], expected == -99999.0)
    assert (chip.data[:, outside] == 0).all()
    assert chip.mask[:, outside].all()


def test_read_wholly_outside_is_all_masked(rgb_byte):
    src = RasterioSource(rgb_byte)
    chip = src.read(Window(800, 900, 10, 12))
    assert chip.shape == (3, 10, 12) and chip.dtype == np.uint8
    assert chip.mask.all() and (chip.data == 0).all()


def test_a_declared_nodata_is_checked_and_nan_means_none_read_or_warped(rgb_byte):
    # A string masked nothing, then failed in .data with a raw TypeError; NaN on 8-bit
    # data masked nothing in chips while .data marked 255 (a valid value) as nodata.
    with pytest.raises(geoxr.ConfigError, match=r"nodata '0' for .* is not a number"):
        RasterioSource(rgb_byte, nodata="0")
    src = RasterioSource(rgb_byte, nodata=float("nan"))
    assert np.isnan(src.nodata) and not src.read(src.extent).mask.any()
    # "None" warped too: not the file's own nodata (0) in its place.
    shifted = src.grid.transform * Affine.translation(0.5, 0.5)
    warped = RasterioSource(
        rgb_byte,
        nodata=float("nan"),
        target_grid=Grid(src.crs, shifted, (src.shape[0] - 1, src.shape[1] - 1)),
    )
    chip = warped.read(warped.extent)
    assert not chip.mask.any() and chip.dtype == np.uint8  # float64 from a NaN-nodata VRT
    data = src.data
    assert data.rio.nodata is None
    with rasterio.open(rgb_byte) as ds:
        np.testing.assert_array_equal(data.values, ds.read())
    assert RasterioSource(rgb_byte, nodata=np.array([255])).nodata == 255.0


def test_zero_is_data_unless_declared(rgb_byte):
    window = Window(0, 0, 50, 50)  # the collar: all 0
    expected = rasterio_read(rgb_byte, window)
    assert (expected == 0).all()
    assert RasterioSource(rgb_byte).read(window).mask.all()
    other = RasterioSource(rgb_byte, nodata=255)
    chip = other.read(window)
    assert other.nodata == 255 and not chip.mask.any()
    np.testing.assert_array_equal(chip.data, expected)


def test_channel_order(rgb_byte):
    src = RasterioSource(rgb_byte, channel_order=[2, 0])
    window = Window(200, 300, 40, 50)
    assert src.num_channels == 2 and src.channels == [2, 0]
    np.testing.assert_array_equal(src.read(window).data, rasterio_read(rgb_byte, window, [3, 1]))
    assert src.data["band"].values.tolist() == [3, 1]
    np.testing.assert_array_equal(
        src.data.isel(window.isel()).values, rasterio_read(rgb_byte, window, [3, 1])
    )


@pytest.mark.parametrize("bbox", [(100, 200, 300, 500), Window(100, 200, 200, 300)], ids=str)
def test_bbox(rgb_byte, bbox):
    src = RasterioSource(rgb_byte, bbox=bbox)
    file_window = rasterio.windows.Window(200, 100, 300, 200)
    with rasterio.open(rgb_byte) as ds:
        expected = ds.read(window=file_window)
        transform = rasterio.windows.transform(file_window, ds.transform)
        bounds = rasterio.windows.bounds(file_window, ds.transform)
    assert src.shape == (200, 300) and src.extent == Window(0, 0, 200, 300)
    assert src.transform.almost_equals(transform)
    np.testing.assert_allclose(src.bounds, bounds)
    np.testing.assert_array_equal(src.read(src.extent).data, expected)
    np.testing.assert_array_equal(src.read(Window(10, 20, 5, 6)).data, expected[:, 10:15, 20:26])
    np.testing.assert_array_equal(src.data.values, expected)
    assert src.data.rio.transform().almost_equals(transform)
    # Past the bbox is past the source, even where the file has pixels.
    chip = src.read(Window(190, 290, 20, 20))
    assert chip.mask[:, 10:, :].all() and chip.mask[:, :, 10:].all()
    np.testing.assert_array_equal(chip.data[:, :10, :10], expected[:, 190:, 290:])


# ---------------------------------------------------------------------------- .data


def test_data_georeference_equals_file(raster):
    path, dtype, nodata, count = raster
    src = RasterioSource(path)
    with raise_if_dask_computes():
        data = src.data
    with rasterio.open(path) as ds:
        assert data.rio.crs == ds.crs
        assert data.rio.transform().almost_equals(ds.transform)
        assert data.rio.bounds() == pytest.approx(tuple(ds.bounds))
        assert data.shape == (ds.count, ds.height, ds.width) == (count, *src.shape)
        assert src.bounds == pytest.approx(tuple(ds.bounds))
        assert src.crs == ds.crs
    assert data.dims == ("band", "y", "x")
    assert data["band"].values.tolist() == list(range(1, count + 1))
    assert data.dtype == np.dtype(dtype)
    if np.dtype(dtype).kind == "f":
        assert np.isnan(data.rio.nodata)
    else:
        assert data.rio.nodata == nodata


def test_data_chunks_aligned_to_internal_tiles(raster):
    path, *_ = raster
    with rasterio.open(path) as ds:
        block_h, block_w = ds.block_shapes[0]
    for chunk_size in (16, 100, 300, 2048):
        chunks = RasterioSource(path, chunk_size=chunk_size).data.chunks
        assert len(chunks[0]) == 1  # all bands in each block
        for sizes, block in ((chunks[1], block_h), (chunks[2], block_w)):
            assert all(size % block == 0 for size in sizes[:-1]), (chunk_size, sizes, block)


def test_data_chunks_nc_tiles(nc_stack):
    # 256 x 256 tiles: chunks of whole tiles, the last one partial.
    data = RasterioSource(nc_stack, chunk_size=300).data
    assert data.chunks == ((6,), (256, 187), (256, 233))
    assert RasterioSource(nc_stack).data.chunks == ((6,), (443,), (489,))
    # A bbox from row and column 100: chunk edges stay on the file's tile edges (256).
    cropped = RasterioSource(nc_stack, bbox=(100, 100, 400, 400), chunk_size=300).data
    assert cropped.chunks == ((6,), (156, 144), (156, 144))
    whole = RasterioSource(nc_stack, bbox=(100, 100, 400, 400)).data  # the file in one chunk
    assert whole.chunks == ((6,), (300,), (300,))


def test_tile_layout_is_the_files_tiles_on_the_sources_grid(nc_stack, rgb_byte, rgb_byte_halves):
    assert RasterioSource(nc_stack).tile_layout == ((256, 256), (0, 0))
    assert RasterioSource(nc_stack, bbox=(100, 30, 400, 480)).tile_layout == (
        (256, 256),
        (100, 30),
    )
    assert RasterioSource(rgb_byte).tile_layout == ((3, 791), (0, 0))  # strips
    # Mosaics and warped reads decode other files' tiles than their VRT's blocks.
    assert RasterioSource(rgb_byte_halves).tile_layout is None
    src = RasterioSource(nc_stack)
    half_pixel = Grid(src.crs, src.transform * Affine.translation(0.5, 0.5), src.shape)
    assert src.on_grid(half_pixel).tile_layout is None
    # A grid of the file's own pixels is read as a crop: the file's tiles again.
    assert src.on_grid(src.grid.crop(Window(100, 30, 9, 9))).tile_layout == ((256, 256), (100, 30))


def test_data_values_equal_rasterio(raster):
    path, dtype, nodata, _ = raster
    expected, _ = rasterio_all(path)
    if np.dtype(dtype).kind == "f":
        expected = np.where(expected == nodata, np.nan, expected)
    src = RasterioSource(path)
    np.testing.assert_array_equal(src.data.values, expected)


@pytest.mark.parametrize("path_fixture", ["nc_stack", "rgb_byte"])
def test_data_is_chunk_invariant(request, path_fixture):
    path = request.getfixturevalue(path_fixture)
    reference = RasterioSource(path, chunk_size=4096).data.values
    for chunk_size in (16, 100, 256, 300, 1000):
        data = RasterioSource(path, chunk_size=chunk_size).data
        np.testing.assert_array_equal(data.values, reference)
        # Same values through uneven rechunking of the lazy array.
        uneven = data.chunk({"y": (100, 7, data.sizes["y"] - 107), "x": 333})
        np.testing.assert_array_equal(uneven.values, reference)


def test_data_window_equals_read(nc_stack):
    src = RasterioSource(nc_stack, chunk_size=256)
    for window in WINDOWS[:3]:
        chip = src.read(window)
        lazy = src.data.isel(window.isel()).values
        np.testing.assert_array_equal(lazy, chip.filled(np.nan))


def test_building_data_computes_nothing(nc_stack, nc_strata, rgb_byte):
    grid = RasterioSource(nc_stack).grid
    with raise_if_dask_computes() as counter:
        sources = [
            RasterioSource(nc_stack, chunk_size=128),
            RasterioSource(nc_strata, target_grid=grid),
            RasterioSource(rgb_byte, bbox=(10, 10, 500, 700), channel_order=[1]),
            RasterioSource(rgb_byte, raster_transformers=[CastTransformer("float32")]),
        ]
        for src in sources:
            lazy = src.data
            lazy = lazy.isel(x=slice(0, 100)).mean("band")
    assert counter.count == 0


# ---------------------------------------------------------------------------- mosaic, warp


def test_mosaic_of_two_halves_equals_original(rgb_byte, rgb_byte_halves):
    original = RasterioSource(rgb_byte)
    mosaic = RasterioSource(rgb_byte_halves)
    assert mosaic.grid.aligned_with(original.grid)
    assert (mosaic.nodata, mosaic.dtype, mosaic.num_channels) == (0.0, np.uint8, 3)
    expected, _ = rasterio_all(rgb_byte)
    chip = mosaic.read(mosaic.extent)
    np.testing.assert_array_equal(chip.data, expected)
    np.testing.assert_array_equal(chip.mask, expected == 0)
    seam = Window(300, 380, 40, 30)  # straddles the seam at column 395
    np.testing.assert_array_equal(mosaic.read(seam).data, rasterio_read(rgb_byte, seam))
    with raise_if_dask_computes():
        lazy = mosaic.data
    np.testing.assert_array_equal(lazy.values, expected)
    assert lazy.rio.transform().almost_equals(original.transform)


def test_a_mosaic_honours_the_nodata_the_user_declares(tmp_path, rgb_byte):
    # The declared nodata reached chips but not the mosaic VRT: files without a nodata
    # tag of their own painted their 0 collars over other files' pixels, and a gap
    # between files (nodata 0 in the files, 255 declared) read as valid black pixels.
    with rasterio.open(rgb_byte) as ds:
        profile, full = ds.profile, ds.read()

    def tile(name, col0, width, *, collar=0, nodata=None):
        data = full[:, :, col0 : col0 + width].copy()
        data[:, :, :collar] = 0
        transform = rasterio.windows.transform(
            rasterio.windows.Window(col0, 0, width, ds.height), profile["transform"]
        )
        meta = dict(profile, width=width, transform=transform, nodata=nodata)
        with rasterio.open(tmp_path / name, "w", **meta) as dst:
            dst.write(data)
        return tmp_path / name

    under_collar = Window(300, 360, 6, 6)  # valid pixels of the first file
    first, second = tile("a.tif", 0, 450), tile("b.tif", 350, 441, collar=60)
    mosaic = RasterioSource([first, second], nodata=0)
    chip = mosaic.read(under_collar)
    expected = full[(slice(None), *under_collar.slices)]
    assert (expected != 0).all()
    np.testing.assert_array_equal(chip.data, expected)
    assert not chip.mask.any()
    gap = Window(100, 400, 4, 4)  # columns 390-409: no file covers them
    apart = [tile("c.tif", 0, 390, nodata=0), tile("d.tif", 410, 381, nodata=0)]
    assert RasterioSource(apart, nodata=255).read(gap).mask.all()


def test_target_grid_read_onto_image_grid(nc_stack, nc_strata):
    image = RasterioSource(nc_stack)
    with rasterio.open(nc_strata) as ds:
        raw, strata_crs = ds.read(1), ds.crs
    assert strata_crs.to_epsg() == 3358 and image.crs.to_epsg() == 32119
    labels = RasterioSource(nc_strata, target_grid=image.grid)
    assert labels.grid == image.grid
    chip = labels.read(labels.extent)
    np.testing.assert_array_equal(chip.data[0], raw)
    np.testing.assert_array_equal(chip.mask[0], raw == -99999.0)
    assert chip.mask.sum() == 1
    window = Window(200, 100, 50, 70)
    np.testing.assert_array_equal(labels.read(window).data[0], raw[window.slices])
    np.testing.assert_array_equal(labels.data.values[0], np.where(raw == -99999.0, np.nan, raw))


# ---------------------------------------------------------------------------- errors


def test_missing_path_raises_read_error(tmp_path):
    missing = tmp_path / "no_such_raster.tif"
    with pytest.raises(geoxr.RasterReadError, match=r"Cannot open raster .*no_such_raster\.tif"):
        RasterioSource(missing)
    assert issubclass(geoxr.RasterReadError, OSError)


def test_not_a_raster_raises_read_error(tmp_path):
    path = tmp_path / "text.tif"
    path.write_text("not a raster")
    with pytest.raises(geoxr.RasterReadError, match=r"text\.tif"):
        RasterioSource(path)


def test_rotated_geotiff_raises(rgb_byte, tmp_path):
    path = tmp_path / "rotated.tif"
    with rasterio.open(rgb_byte) as ds:
        rotated = ds.transform * Affine.rotation(30)
        with rasterio.open(path, "w", **(ds.profile | {"transform": rotated})) as dst:
            dst.write(ds.read())
    with pytest.raises(geoxr.NoGeoreferenceError, match=r"rotated\.tif' has a rotated or sheared"):
        RasterioSource(path)


def test_geotiff_without_crs_raises(rgb_byte, tmp_path):
    path = tmp_path / "no_crs.tif"
    with rasterio.open(rgb_byte) as ds:
        profile = dict(ds.profile)
        profile.pop("crs")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(ds.read())
    with rasterio.open(path) as ds:
        assert ds.crs is None
    with pytest.raises(geoxr.NoGeoreferenceError, match=r"no_crs\.tif' has no CRS"):
        RasterioSource(path)


@pytest.mark.parametrize(
    "bbox", [(0, 0, 800, 10), (-1, 0, 10, 10), (700, 780, 720, 792), Window(718, 0, 1, 1)], ids=str
)
def test_bbox_outside_raster_raises(rgb_byte, bbox):
    with pytest.raises(
        geoxr.WindowError, match=r"reaches outside raster .* 718 rows x 791 columns"
    ):
        RasterioSource(rgb_byte, bbox=bbox)


@pytest.mark.parametrize(
    ("bbox", "bad"),
    [
        ((0.5, 0, 100.7, 100), r"\[0\.5, 100\.7\]"),
        ((0, 0, 100.0, 100), r"\[100\.0\]"),
        ((0, False, 100, 100), r"\[False\]"),
    ],
    ids=str,
)
def test_non_integer_bbox_raises(rgb_byte, bbox, bad):
    # Window.from_box used to truncate them: (0.5, 0, 100.7, 100) read rows 0..100.
    with pytest.raises(
        geoxr.WindowError, match=rf"bbox .* holds {bad}, which are not integer pixel"
    ):
        RasterioSource(rgb_byte, bbox=bbox)


@pytest.mark.parametrize("values", [(0, 0, 10.5, 10), (300.7, 0, 4, 4), (True, 0, 4, 4)])
def test_a_window_of_non_integers_is_refused(values):
    # Windows took floats and bools, then failed in slicing with a raw TypeError; from_box
    # truncated a Raster Vision box of floats (a pixel off).
    with pytest.raises(geoxr.WindowError, match=r"not an integer pixel index: refused"):
        Window(*values)
    with pytest.raises(geoxr.WindowError, match=r"not integer pixel indices: refused"):
        Window.from_box(0.9, 0, 10.9, 10)
    assert Window(np.int64(1), 2, 3, 4) == Window(1, 2, 3, 4)


def test_bbox_takes_numpy_integers(rgb_byte):
    src = RasterioSource(rgb_byte, bbox=tuple(np.array([100, 200, 300, 500])))
    assert src.shape == (200, 300)
    # A numpy array itself too: it was "not 4 values".
    assert RasterioSource(rgb_byte, bbox=np.array([100, 200, 300, 500])).grid == src.grid
    np.testing.assert_array_equal(
        src.read(Window(0, 0, 8, 8)).data, rasterio_read(rgb_byte, Window(100, 200, 8, 8))
    )


@pytest.mark.parametrize("channel_order", [[3], [0, -1], []])
def test_bad_channel_order_raises(rgb_byte, channel_order):
    with pytest.raises(geoxr.WindowError, match=r"channel_order .* has 3 bands.* 0\.\.2"):
        RasterioSource(rgb_byte, channel_order=channel_order)


@pytest.mark.parametrize(
    ("channel_order", "bad"),
    [([0.5, 1.7], r"\[0\.5, 1\.7\]"), ([0, 2.0], r"\[2\.0\]"), ([True, 1], r"\[True\]")],
)
def test_non_integer_channel_order_raises(rgb_byte, channel_order, bad):
    # int() used to truncate them: [0.5, 1.7] read bands [0, 1].
    with pytest.raises(
        geoxr.WindowError, match=rf"channel_order .* holds {bad}, which are not integer band"
    ):
        RasterioSource(rgb_byte, channel_order=channel_order)


@pytest.mark.parametrize("channel_order", [2, np.int64(2)], ids=repr)
def test_a_bare_int_channel_order_says_to_give_a_sequence(rgb_byte, channel_order):
    # list(2) used to raise a raw TypeError: 'int' object is not iterable.
    with pytest.raises(
        geoxr.WindowError, match=r"channel_order 2 .* not a sequence.*channel_order=\[2\]"
    ):
        RasterioSource(rgb_byte, channel_order=channel_order)


def test_channel_order_takes_numpy_integers(rgb_byte):
    src = RasterioSource(rgb_byte, channel_order=np.array([2, 0]))
    assert src.channels == [2, 0] and all(type(c) is int for c in src.channels)
    np.testing.assert_array_equal(
        src.read(Window(100, 200, 8, 8)).data,
        rasterio_read(rgb_byte, Window(100, 200, 8, 8), [3, 1]),
    )


def test_mosaic_of_different_crs_raises(rgb_byte, sn4_image):
    with pytest.raises(geoxr.CRSMismatchError, match="Cannot mosaic"):
        RasterioSource([rgb_byte, sn4_image])


def test_mosaic_of_another_dtype_or_a_shifted_grid_raises(tmp_path, rgb_byte_halves):
    left, right = rgb_byte_halves
    with rasterio.open(right) as ds:
        profile, values = ds.profile, ds.read()
    wider = tmp_path / "right_uint16.tif"
    with rasterio.open(wider, "w", **(profile | {"dtype": "uint16"})) as dst:
        dst.write(values.astype(np.uint16) * 4)  # a uint8 mosaic made 1020 into 255
    shifted = tmp_path / "right_shifted.tif"
    half_pixel = profile["transform"] * Affine.translation(0.5, 0)
    with rasterio.open(shifted, "w", **(profile | {"transform": half_pixel})) as dst:
        dst.write(values)
    with pytest.raises(geoxr.CRSMismatchError, match=r"data type.*uint8\), got .*uint16\)"):
        RasterioSource([left, wider])
    with pytest.raises(
        geoxr.CRSMismatchError, match=r"not a whole number of pixels apart: \(395\.5, 0\.0\)"
    ):
        RasterioSource([left, shifted])


# ---------------------------------------------------------------------------- pickle, transformers


def test_pickle_round_trip_then_read(nc_stack, nc_strata, rgb_byte_halves):
    image = RasterioSource(nc_stack, channel_order=[3, 2, 1])
    sources = [
        image,
        RasterioSource(nc_strata, target_grid=image.grid),
        RasterioSource(rgb_byte_halves, bbox=(100, 300, 400, 500)),
    ]
    window = Window(50, 60, 40, 30)
    for src in sources:
        before = src.read(window)  # opens this thread's handle first
        clone = pickle.loads(pickle.dumps(src))
        assert clone.grid == src.grid and clone.channels == src.channels
        after = clone.read(window)
        np.testing.assert_array_equal(after.data, before.data)
        np.testing.assert_array_equal(after.mask, before.mask)
        np.testing.assert_array_equal(clone.data.values, src.data.values)


def test_cast_transformer_chip_equals_lazy_data_uint8(rgb_byte):
    src = RasterioSource(rgb_byte, raster_transformers=[CastTransformer("float32")])
    assert src.dtype == np.float32
    window = Window(0, 0, 100, 120)
    chip = src.read(window)
    lazy = src.data.isel(window.isel())
    assert chip.dtype == lazy.dtype == np.float32
    raw = rasterio_read(rgb_byte, window)
    np.testing.assert_array_equal(chip.mask, raw == 0)
    np.testing.assert_array_equal(lazy.values, chip.filled(np.nan))
    np.testing.assert_array_equal(chip.data[~chip.mask], raw[raw != 0].astype(np.float32))


def test_cast_transformer_chip_equals_lazy_data_float_to_uint8(nc_stack):
    # NC DN 0..255 stored as float32: cast to uint8 is lossless for valid pixels.
    src = RasterioSource(nc_stack, raster_transformers=[CastTransformer("uint8")])
    assert src.dtype == np.uint8
    window = Window(0, 0, 120, 100)  # holds the nodata collar
    chip = src.read(window)
    raw = rasterio_read(nc_stack, window)
    np.testing.assert_array_equal(chip.mask, raw == -99999.0)
    np.testing.assert_array_equal(chip.data[~chip.mask], raw[raw != -99999.0].astype(np.uint8))
    lazy = src.data
    assert lazy.dtype == np.uint8
    values = lazy.isel(window.isel()).values
    np.testing.assert_array_equal(values[~chip.mask], chip.data[~chip.mask])
    assert (values[chip.mask] == lazy.rio.nodata).all()


def test_a_file_given_by_relative_or_absolute_path_is_the_same_work(rgb_byte, monkeypatch):
    # The path was tokenized as given: a prediction job of the same image opened by
    # another spelling of its path was another job (its Zarr store would not resume).
    from dask.base import tokenize

    monkeypatch.chdir(rgb_byte.parent)
    relative = RasterioSource(rgb_byte.name)
    assert tokenize(relative) == tokenize(RasterioSource(rgb_byte))
    assert relative.uris == [rgb_byte.name]  # as given
    monkeypatch.chdir("/")  # opened from anywhere, as a worker in another directory would
    np.testing.assert_array_equal(
        relative.read(Window(0, 0, 8, 8)), RasterioSource(rgb_byte).read(Window(0, 0, 8, 8))
    )
