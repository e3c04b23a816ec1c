"""Tests of geoxr.label: RasterizedSource and SemanticSegmentationLabelSource on real labels."""

import pickle

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import rasterio.windows

import geoxr
from geoxr import (
    ClassConfig,
    RasterioSource,
    RasterizedSource,
    SemanticSegmentationLabelSource,
    VectorSource,
    Window,
)
from geoxr.testing import raise_if_dask_computes

# Pixel counts of landclass96_strata.tif for class ids 1..7 (shared/data/README.md).
STRATA_COUNTS = [65099, 1433, 23502, 14532, 107643, 4223, 194]

NC_WINDOWS = [
    Window(0, 0, 443, 489),  # the whole scene
    Window(280, 300, 80, 100),  # several classes
    Window(30, 100, 48, 40),
    Window(400, 120, 64, 128),  # past the bottom edge, where polygons reach past it
    Window(-20, -30, 64, 64),  # before the top-left corner
]
SN4_WINDOWS = [
    Window(0, 0, 900, 900),
    Window(0, 0, 128, 128),
    Window(800, 380, 100, 120),
    Window(850, 850, 100, 100),  # past the bottom-right corner
]


def reference_rasterize(gdf, ids, transform, window, all_touched):
    """rasterio.features.rasterize of the polygons on one window's transform."""
    return rasterio.features.rasterize(
        zip(gdf.geometry, ids, strict=True),
        out_shape=window.shape,
        transform=rasterio.windows.transform(window.to_rasterio(), transform),
        fill=0,
        all_touched=all_touched,
        dtype="uint8",
    )


def assert_chip_equals_reference(chip, reference, window, extent):
    inner = window.intersection(extent)
    inside = np.zeros(window.shape, bool)
    inside[inner.ymin - window.ymin : inner.ymax - window.ymin,
           inner.xmin - window.xmin : inner.xmax - window.xmin] = True  # fmt: skip
    assert chip.shape == (1, *window.shape) and chip.dtype == np.uint8
    np.testing.assert_array_equal(chip.data[0][inside], reference[inside])
    np.testing.assert_array_equal(np.ma.getmaskarray(chip)[0], ~inside)


@pytest.fixture(scope="module")
def nc_image(nc_stack):
    return RasterioSource(nc_stack)


@pytest.fixture(scope="module")
def nc_polygons_on_image(nc_polygons, nc_image):
    """The NC polygons reprojected with geopandas to the image CRS (EPSG:32119)."""
    return gpd.read_file(nc_polygons).to_crs(nc_image.crs.to_wkt())


# ---------------------------------------------------------------------------- RasterizedSource


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize("window", NC_WINDOWS, ids=str)
def test_rasterized_nc_polygons_equal_rasterio(
    nc_polygons, nc_image, nc_polygons_on_image, window, all_touched
):
    src = RasterizedSource(
        VectorSource(nc_polygons),
        grid=nc_image.grid,
        class_id_column="id",
        all_touched=all_touched,
    )
    assert src.crs.to_epsg() == 32119 and src.shape == (443, 489)
    gdf = nc_polygons_on_image
    reference = reference_rasterize(gdf, gdf["id"], nc_image.transform, window, all_touched)
    chip = src.read(window)
    assert_chip_equals_reference(chip, reference, window, nc_image.extent)
    if window == NC_WINDOWS[1]:
        assert len(np.unique(reference)) >= 4  # labels of several classes
    if window == NC_WINDOWS[3]:
        assert reference[:43].any() and reference[43:].any()  # labels on both sides of the edge


def test_rasterized_nc_polygons_cover_expected_classes(nc_polygons, nc_image):
    src = RasterizedSource(VectorSource(nc_polygons), grid=nc_image.grid, class_id_column="id")
    full = src.read(src.extent).data[0]
    assert sorted(np.unique(full).tolist()) == [0, 1, 2, 3, 4, 5, 6, 7]
    touched = RasterizedSource(
        VectorSource(nc_polygons), grid=nc_image.grid, class_id_column="id", all_touched=True
    ).read(src.extent)
    assert (touched.data[0] > 0).sum() > (full > 0).sum()


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize("window", SN4_WINDOWS, ids=str)
def test_rasterized_spacenet_buildings_equal_rasterio(
    sn4_buildings, sn4_image, window, all_touched
):
    image = RasterioSource(sn4_image)
    src = RasterizedSource(
        VectorSource(sn4_buildings), grid=image.grid, default_class_id=1, all_touched=all_touched
    )
    gdf = gpd.read_file(sn4_buildings).to_crs(image.crs.to_wkt())
    assert len(gdf) == 43
    reference = reference_rasterize(gdf, [1] * len(gdf), image.transform, window, all_touched)
    assert_chip_equals_reference(src.read(window), reference, window, image.extent)


def test_rasterized_lazy_data_equals_reads(nc_polygons, nc_image, nc_polygons_on_image):
    src = RasterizedSource(
        VectorSource(nc_polygons), grid=nc_image.grid, class_id_column="id", chunk_size=100
    )
    with raise_if_dask_computes():
        data = src.data
    assert data.chunks == ((1,), (100, 100, 100, 100, 43), (100, 100, 100, 100, 89))
    assert data.dtype == np.uint8 and data.rio.crs == nc_image.crs
    gdf = nc_polygons_on_image
    reference = reference_rasterize(gdf, gdf["id"], nc_image.transform, src.extent, False)
    np.testing.assert_array_equal(data.values[0], reference)


def test_rasterized_background_and_pickle(nc_polygons, nc_image):
    src = RasterizedSource(
        VectorSource(nc_polygons), grid=nc_image.grid, class_id_column="id", background_class_id=9
    )
    window = Window(280, 300, 80, 100)
    chip = src.read(window).data[0]
    assert (chip == 9).sum() > 0 and set(np.unique(chip)) <= set(range(1, 10))
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.read(window).data[0], chip)


def test_rasterized_negative_class_ids_raise(nc_polygons, nc_image, tmp_path):
    polygons = gpd.read_file(nc_polygons)
    polygons.loc[0, "id"] = -1  # burned into uint8, it became background
    path = tmp_path / "negative.gpkg"
    polygons.to_file(path)
    with pytest.raises(geoxr.ClassConfigError, match=r"negative class ids \[-1\]"):
        RasterizedSource(VectorSource(path), grid=nc_image.grid, class_id_column="id")
    # Fractions were truncated: 1.7 burned as class 1 (ClassInferenceTransformer refuses them).
    polygons["id"] = polygons["id"].astype(float)
    polygons.loc[0, "id"], polygons.loc[1, "id"] = 1.7, 2.0
    polygons.to_file(path)
    with pytest.raises(geoxr.ClassConfigError, match=r"class ids \[1\.7\] that are not whole"):
        RasterizedSource(VectorSource(path), grid=nc_image.grid, class_id_column="id")
    with pytest.raises(geoxr.ClassConfigError, match=r"negative class ids \[-2\]"):
        RasterizedSource(
            VectorSource(nc_polygons),
            grid=nc_image.grid,
            class_id_column="id",
            background_class_id=-2,
        )


def test_rasterized_missing_class_ids_raise(sn4_buildings, sn4_image, nc_polygons, nc_stack):
    # A missing column, and class names or "yes" in place of ids, all said "no class id
    # in column ...": now which it is, with the columns or values found.
    image = RasterioSource(sn4_image)
    with pytest.raises(
        geoxr.ClassConfigError,
        match=r"43 features .* no numeric class id: it has no column 'class_id' \(its "
        r"columns: \['access', .* and \d+ more\)",
    ):
        RasterizedSource(VectorSource(sn4_buildings), grid=image.grid)
    with pytest.raises(geoxr.ClassConfigError, match=r"column 'building' holds \['yes'\] there"):
        RasterizedSource(VectorSource(sn4_buildings), grid=image.grid, class_id_column="building")
    with pytest.raises(geoxr.ClassConfigError, match=r"ClassInferenceTransformer"):
        RasterizedSource(
            VectorSource(nc_polygons), grid=RasterioSource(nc_stack).grid, class_id_column="label"
        )


def test_vector_labels_of_another_place_are_refused(
    sn4_image, sn4_buildings, nc_polygons, nc_class_config
):
    # Polygons that miss the image read as background everywhere: trained on, and scored
    # (the quickstart reported mIoU 1.0). A crop of the image without them is fine.
    corner = geoxr.make_ss_scene(
        sn4_image,
        label_vector_uri=sn4_buildings,
        class_config=geoxr.ClassConfig(["background", "building"]),
        default_class_id=1,
        image_raster_source_kw={"bbox": (0, 0, 4, 4)},
    )
    assert corner.grid.shape == (4, 4)
    with pytest.raises(
        geoxr.CRSMismatchError, match=r"The polygons of .* and the image .* do not overlap"
    ):
        geoxr.make_ss_scene(
            sn4_image,
            label_vector_uri=nc_polygons,
            class_config=nc_class_config,
            class_id_column="id",
        )


# ---------------------------------------------------------------------------- label source


@pytest.fixture(scope="module")
def strata_labels(nc_strata, nc_class_config):
    return SemanticSegmentationLabelSource(RasterioSource(nc_strata), nc_class_config)


def test_strata_pixel_counts_through_get_label_arr(strata_labels):
    labels = strata_labels.get_label_arr(strata_labels.grid.extent)
    assert labels.dtype == np.int64 and labels.shape == (443, 489)
    counts = np.bincount(labels.ravel(), minlength=8)
    assert counts[1:].tolist() == STRATA_COUNTS
    assert counts[0] == 1  # the one nodata pixel is null
    np.testing.assert_array_equal(strata_labels[Window(0, 0, 5, 6)], labels[:5, :6])


@pytest.mark.parametrize("chunk_size", [16, 100, 2048])
def test_strata_pixel_counts_through_lazy_data(nc_strata, nc_class_config, chunk_size):
    source = SemanticSegmentationLabelSource(
        RasterioSource(nc_strata, chunk_size=chunk_size), nc_class_config
    )
    with raise_if_dask_computes():
        data = source.data
        assert data.dims == ("y", "x") and data.dtype == np.int64
        assert data.rio.nodata == 0
    counts = np.bincount(data.values.ravel(), minlength=8)
    assert counts[1:].tolist() == STRATA_COUNTS and counts[0] == 1
    np.testing.assert_array_equal(data.values, source.get_label_arr(source.grid.extent))


def test_label_arr_equals_raster_values(strata_labels, nc_strata):
    with rasterio.open(nc_strata) as ds:
        raw = ds.read(1)
    window = Window(100, 200, 50, 60)
    np.testing.assert_array_equal(
        strata_labels.get_label_arr(window), raw[window.slices].astype(np.int64)
    )
    null_row, null_col = np.argwhere(raw == -99999.0)[0]
    window = Window(int(null_row), int(null_col), 1, 1)
    assert strata_labels.get_label_arr(window).tolist() == [[0]]


def test_label_arr_past_edge_is_null(strata_labels, nc_strata):
    with rasterio.open(nc_strata) as ds:
        raw = ds.read(1)
    labels = strata_labels.get_label_arr(Window(430, 480, 20, 20))
    assert (labels[13:, :] == 0).all() and (labels[:, 9:] == 0).all()
    np.testing.assert_array_equal(labels[:13, :9], raw[430:, 480:])


def test_sparse_label_raster(nc_labelled_pixels, nc_class_config):
    source = SemanticSegmentationLabelSource(RasterioSource(nc_labelled_pixels), nc_class_config)
    labels = source.get_label_arr(source.grid.extent)
    assert (labels > 0).sum() == 2872
    assert sorted(np.unique(labels).tolist()) == list(range(8))


def test_null_class_added_when_missing(nc_strata):
    names = ["unused", "developed", "agriculture", "herbaceous", "shrubland", "forest", "water"]
    source = SemanticSegmentationLabelSource(
        RasterioSource(nc_strata), ClassConfig([*names, "sediment"])
    )
    assert source.class_config.names[-1] == "null" and source.null_class_id == 8
    counts = np.bincount(source.get_label_arr(source.grid.extent).ravel(), minlength=9)
    assert counts[8] == 1 and counts[7] == 194


def test_rasterized_label_source(nc_polygons, nc_image, nc_class_config, nc_polygons_on_image):
    rasterized = RasterizedSource(
        VectorSource(nc_polygons), grid=nc_image.grid, class_id_column="id"
    )
    source = SemanticSegmentationLabelSource(rasterized, nc_class_config)
    window = Window(280, 300, 80, 100)
    gdf = nc_polygons_on_image
    reference = reference_rasterize(gdf, gdf["id"], nc_image.transform, window, False)
    np.testing.assert_array_equal(source.get_label_arr(window), reference.astype(np.int64))
    np.testing.assert_array_equal(
        source.data.isel(window.isel()).values, reference.astype(np.int64)
    )


def test_label_value_outside_class_config_raises(nc_strata):
    config = ClassConfig(
        ["null", "developed", "agriculture", "herbaceous", "shrubland"], null_class="null"
    )
    source = SemanticSegmentationLabelSource(RasterioSource(nc_strata), config)
    with pytest.raises(
        geoxr.ClassConfigError,
        match=r"Label raster RasterioSource\(.*strata.*: class ids \[5, 6, 7\] that",
    ):
        source.get_label_arr(source.grid.extent)
    with pytest.raises(
        geoxr.ClassConfigError, match=r"class ids \[5, 6, 7\] that the class config"
    ):
        source.data.compute()


def test_label_chips_name_their_raster_only_to_raise(nc_strata, nc_class_config, monkeypatch):
    # A RasterioSource's repr asks PROJ for its CRS: made per chip for the error message,
    # it took 9% of a training pass's interpreter time.
    source = SemanticSegmentationLabelSource(RasterioSource(nc_strata), nc_class_config)
    named = []
    monkeypatch.setattr(RasterioSource, "__repr__", lambda self: named.append(1) or "strata")
    ids = source.get_label_arr(Window(0, 0, 64, 64))
    assert ids.shape == (64, 64) and named == []


def test_label_value_outside_class_config_in_window(nc_strata, nc_class_config):
    small = ClassConfig(
        ["null", "developed", "agriculture", "herbaceous", "shrubland"], null_class="null"
    )
    source = SemanticSegmentationLabelSource(RasterioSource(nc_strata), small)
    # The top-left corner is forest (5) next to shrubland (4).
    with pytest.raises(geoxr.ClassConfigError, match=r": class ids \[5\] that"):
        source.get_label_arr(Window(0, 0, 2, 4))


def test_multiband_label_raster_raises(rgb_byte, nc_class_config):
    with pytest.raises(geoxr.ClassConfigError, match=r"has 3 bands; expected one band"):
        SemanticSegmentationLabelSource(RasterioSource(rgb_byte), nc_class_config)
    one_band = SemanticSegmentationLabelSource(
        RasterioSource(rgb_byte, channel_order=[0], bbox=(0, 0, 2, 2)),
        ClassConfig([str(i) for i in range(256)]),
    )
    assert one_band.get_label_arr(Window(0, 0, 2, 2)).shape == (2, 2)
