"""Every raster transformer: the lazy .data equals the chip for every window; nothing computes early."""

import json

import numpy as np
import pytest
import rasterio

import geoxr
from geoxr.grid import sliding_windows
from geoxr.testing import raise_if_dask_computes


def assert_lazy_equals_chips(source, windows):
    with raise_if_dask_computes():
        data = source.data
    assert data.shape[0] == source.num_channels and data.dtype == source.dtype
    values = data.values
    for window in windows:
        chip = source.read(window)
        lazy = values[(..., *window.slices)]
        expected = chip.filled(np.nan) if chip.dtype.kind == "f" else chip.data
        if chip.dtype.kind != "f" and source.data_nodata is not None:
            assert data.rio.nodata == source.data_nodata
            expected = np.where(chip.mask, source.data_nodata, chip.data)
        np.testing.assert_array_equal(lazy, expected)


@pytest.fixture(scope="module")
def nc_windows():
    return sliding_windows((443, 489), 128, 128, padding=0)


def test_stats_transformer_from_dask_reduction_and_json(tmp_path, nc_stack, nc_windows):
    raw = geoxr.RasterioSource(nc_stack)
    with raise_if_dask_computes(max_computes=1):
        stats = geoxr.StatsTransformer.from_data(raw.data)
    with rasterio.open(nc_stack) as ds:
        band = ds.read(1, masked=True)
    assert stats.means[0] == pytest.approx(float(band.mean()), rel=1e-6)
    assert stats.stds[0] == pytest.approx(float(band.std()), rel=1e-6)
    loaded = geoxr.StatsTransformer.load(stats.save(tmp_path / "stats.json"))
    assert json.loads((tmp_path / "stats.json").read_text())["max_stds"] == 3.0
    assert loaded.means == stats.means
    source = geoxr.RasterioSource(nc_stack, raster_transformers=[loaded])
    assert source.dtype == np.uint8
    assert_lazy_equals_chips(source, nc_windows)
    chip = source.read(nc_windows[4])
    assert chip.mask.any() or True
    assert chip.data[~chip.mask].max() <= 255


def test_minmax_transformer_uses_global_extremes(nc_stack, nc_windows):
    raw = geoxr.RasterioSource(nc_stack)
    minmax = geoxr.MinMaxTransformer.from_data(raw.data)
    with rasterio.open(nc_stack) as ds:
        band = ds.read(4, masked=True)
    assert (minmax.mins[3], minmax.maxs[3]) == (float(band.min()), float(band.max()))
    source = geoxr.RasterioSource(nc_stack, raster_transformers=[minmax])
    assert_lazy_equals_chips(source, nc_windows)
    values = source.data.values
    valid = ~np.isnan(raw.data.values)
    assert values[valid].min() == 0 and values[valid].max() == 255


def test_cast_and_nan_transformers(nc_stack, nc_windows):
    # A float raster with both true NaN and a declared nodata value (-99999).
    values = geoxr.RasterioSource(nc_stack).data.values.copy()
    values[:, 200:210, 200:260] = np.nan
    values = np.nan_to_num(values, nan=-99999.0)
    values[:, 200:210, 200:260] = np.nan
    data = geoxr.RasterioSource(nc_stack).data.copy(data=values).rio.write_nodata(-99999.0)
    source = geoxr.XarraySource(
        data.chunk({"y": 128, "x": 128}),
        raster_transformers=[geoxr.NanTransformer(0.0), geoxr.CastTransformer("int16")],
    )
    assert source.dtype == np.int16 and source.nodata == -99999.0
    assert_lazy_equals_chips(source, nc_windows)
    chip = source.read(geoxr.Window(190, 190, 40, 80))
    # NaN became the value 0 and is data; the declared nodata stays masked (as in Raster Vision)
    assert not chip.mask[:, 10:20, 10:70].any() and (chip.data[:, 10:20, 10:70] == 0).all()
    nodata = values[:, 190:230, 190:270] == -99999.0
    np.testing.assert_array_equal(chip.mask, nodata)
    expected = values[:, 190:230, 190:270]
    np.testing.assert_array_equal(
        chip.data[~chip.mask], np.nan_to_num(expected)[~nodata].astype(np.int16)
    )


def test_reclass_transformer_on_the_label_raster(nc_strata, nc_windows):
    merge = {
        1: 1,
        2: 2,
        3: 2,
        4: 2,
        5: 3,
        6: 4,
        7: 4,
    }  # developed, vegetation, forest, water+sediment
    source = geoxr.RasterioSource(nc_strata, raster_transformers=[geoxr.ReclassTransformer(merge)])
    assert_lazy_equals_chips(source, nc_windows)
    values = source.data.values[0]
    assert set(np.unique(values[~np.isnan(values)]).astype(int)) == {1, 2, 3, 4}


def test_rgb_class_transformer(tmp_path, rgb_byte):
    with rasterio.open(rgb_byte) as ds:
        rgb = ds.read()
    valid = (rgb != 0).all(axis=0) & (rgb != 255).any(axis=0)  # data (nodata 0), not white
    colours, counts = np.unique(rgb[:, valid].T, axis=0, return_counts=True)
    common = tuple(int(v) for v in colours[counts.argmax()])
    config = geoxr.ClassConfig(["common", "white"], colors=[common, (255, 255, 255)])
    source = geoxr.RasterioSource(
        rgb_byte, raster_transformers=[geoxr.RGBClassTransformer(config)]
    )
    assert source.num_channels == 1 and source.dtype == np.uint8
    windows = sliding_windows(source.shape, 256, 256, padding=0)
    assert_lazy_equals_chips(source, windows)
    ids = source.data.values[0]
    is_common = (rgb == np.array(common)[:, None, None]).all(axis=0)
    white = (rgb == 255).all(axis=0)
    assert is_common.sum() == counts.max() and (ids[is_common] == 0).all()
    assert (ids[white] == 1).all()
    assert (ids[~is_common & ~white] == 2).all()  # other colours and nodata: the null class
    with pytest.raises(geoxr.ClassConfigError, match="share colours"):
        geoxr.RGBClassTransformer(geoxr.ClassConfig(["a", "b"], colors=[(1, 1, 1), (1, 1, 1)]))


def test_rgb_classes_with_a_zero_band_are_not_nodata(tmp_path, rgb_byte):
    # With nodata 0, any band 0 made the pixel nodata: pure red and green were the null class.
    with rasterio.open(rgb_byte) as ds:
        profile = ds.profile
    rgb = np.zeros((3, 4, 6), np.uint8)
    rgb[0, :, 2:4] = 255  # red
    rgb[1, :, 4:] = 255  # green; columns 0-1 black: nodata
    profile.update(width=6, height=4, nodata=0)
    path = tmp_path / "labels.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb)
    config = geoxr.ClassConfig(["red", "green"], colors=[(255, 0, 0), (0, 255, 0)])
    source = geoxr.RasterioSource(path, raster_transformers=[geoxr.RGBClassTransformer(config)])
    assert source.read(source.extent)[0].tolist() == [[2, 2, 0, 0, 1, 1]] * 4
    with pytest.raises(geoxr.BandCountError, match=r"needs 3 bands \(RGB\), but .* gives it 2"):
        geoxr.RasterioSource(
            path, channel_order=[0, 1], raster_transformers=[geoxr.RGBClassTransformer(config)]
        )


def test_rgb_band_masked_alone_counts_as_zero():
    # A stack of one file per band: green's file has nodata 255 where it does not cover.
    # The masked value itself (255) was read as green: red + masked green was no class.
    config = geoxr.ClassConfig(["red", "yellow"], colors=[(255, 0, 0), (255, 255, 0)])
    values = np.array([[[255, 255]], [[255, 255]], [[0, 0]]], np.uint8)
    mask = np.zeros(values.shape, bool)
    mask[1, 0, 0] = True  # green masked alone in the first pixel
    ids = geoxr.RGBClassTransformer(config).transform(np.ma.MaskedArray(values, mask=mask))
    assert ids.tolist() == [[[0, 1]]]


def test_transformers_with_values_for_other_bands_are_refused_when_the_source_is_made(rgb_byte):
    # Statistics of 3 bands on 2 failed at read time (a raw ValueError); a 1-band range
    # was broadcast to every band.
    stats = geoxr.StatsTransformer((1.0,) * 3, (1.0,) * 3)
    with pytest.raises(
        geoxr.BandCountError, match=r"StatsTransformer has values for 3 bands, .* 2"
    ):
        geoxr.RasterioSource(rgb_byte, channel_order=[0, 1], raster_transformers=[stats])
    minmax = geoxr.MinMaxTransformer((0.0,), (255.0,))
    with pytest.raises(geoxr.BandCountError, match=r"MinMaxTransformer has values for 1 bands"):
        geoxr.RasterioSource(rgb_byte, raster_transformers=[minmax])


def test_equal_transformers_are_the_same_work_and_a_generator_of_them_is_kept(rgb_byte):
    # Their repr (part of every source's dask token) had become object.__repr__: the
    # same source was other work in every process, and a resumed job another job.
    from dask.base import tokenize

    def source(scale):
        return geoxr.RasterioSource(
            rgb_byte,
            raster_transformers=(t for t in [geoxr.MinMaxTransformer((0,) * 3, (scale,) * 3)]),
        )

    assert repr(geoxr.CastTransformer("float32")) == "CastTransformer(to_dtype=dtype('float32'))"
    assert tokenize(source(255)) == tokenize(source(255)) != tokenize(source(128))
    assert len(source(255).raster_transformers) == 1  # the generator's was dropped
    with pytest.raises(geoxr.BandCountError, match=r"3 minimums and 1 maximums"):
        geoxr.MinMaxTransformer((0, 0, 0), (1,))
