"""Tests of geoxr.label.scene (Scene, make_ss_scene) on the real scenes."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

import geoxr
from geoxr import (
    ClassConfig,
    RasterioSource,
    RasterizedSource,
    Scene,
    SemanticSegmentationLabelSource,
    VectorSource,
    Window,
    make_ss_scene,
)

STRATA_COUNTS = [65099, 1433, 23502, 14532, 107643, 4223, 194]


def write_aoi(path, geometries, crs):
    gpd.GeoDataFrame(geometry=list(geometries), crs=crs).to_file(path)
    return path


def test_label_raster_in_other_crs_is_aligned_to_image_grid(nc_stack, nc_strata, nc_class_config):
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    assert scene.id == "lsat7_2000_stack"
    assert scene.grid.crs.to_epsg() == 32119
    with rasterio.open(nc_strata) as ds:
        assert ds.crs.to_epsg() == 3358
        raw = ds.read(1)
    labels = scene.label_source
    assert labels.grid.aligned_with(scene.grid)
    assert scene.class_config is labels.class_config
    arr = labels.get_label_arr(scene.grid.extent)
    np.testing.assert_array_equal(arr, np.where(raw == -99999.0, 0, raw).astype(np.int64))
    assert np.bincount(arr.ravel(), minlength=8)[1:].tolist() == STRATA_COUNTS
    window = Window(120, 240, 33, 47)
    np.testing.assert_array_equal(labels.get_label_arr(window), arr[window.slices])


def test_vector_labels_in_other_crs(nc_stack, nc_polygons, nc_class_config):
    scene = make_ss_scene(
        nc_stack,
        class_config=nc_class_config,
        label_vector_uri=nc_polygons,
        class_id_column="id",
        scene_id="nc",
    )
    assert scene.id == "nc"
    labels = scene.label_source
    assert isinstance(labels.raster_source, RasterizedSource)
    assert labels.grid.aligned_with(scene.grid)
    arr = labels.get_label_arr(scene.grid.extent)
    gdf = gpd.read_file(nc_polygons).to_crs(scene.grid.crs.to_wkt())
    expected = rasterio.features.rasterize(
        zip(gdf.geometry, gdf["id"], strict=True),
        out_shape=scene.grid.shape,
        transform=scene.grid.transform,
        dtype="uint8",
    )
    np.testing.assert_array_equal(arr, expected.astype(np.int64))
    # Sparse polygons: mostly background (0 = the null class of this config).
    assert sorted(np.unique(arr).tolist()) == list(range(8))
    assert (arr > 0).sum() < 0.02 * arr.size


def test_spacenet_scene(sn4_image, sn4_buildings):
    scene = make_ss_scene(
        sn4_image,
        label_vector_uri=sn4_buildings,
        class_config=ClassConfig(["background", "building"]),
        default_class_id=1,
        all_touched=True,
    )
    assert scene.id == "sn4_atlanta_pan"
    assert scene.class_config.names == ("background", "building", "null")
    assert scene.label_source.null_class_id == 2
    assert scene.grid.crs.to_epsg() == 32616 and scene.grid.shape == (900, 900)
    assert scene.aoi is None and scene.aoi_polygons is None
    arr = scene.label_source.get_label_arr(scene.grid.extent)
    gdf = gpd.read_file(sn4_buildings)
    expected = rasterio.features.rasterize(
        [(g, 1) for g in gdf.geometry],
        out_shape=(900, 900),
        transform=scene.grid.transform,
        all_touched=True,
        dtype="uint8",
    )
    np.testing.assert_array_equal(arr, expected)


def test_raster_visions_names_for_the_default_class_and_the_extent(sn4_image, sn4_buildings):
    config = ClassConfig(["background", "building"])

    def scene(**kw):
        return make_ss_scene(sn4_image, label_vector_uri=sn4_buildings, class_config=config, **kw)

    window = geoxr.Window(0, 0, 300, 300)
    rv = scene(label_vector_default_class_id=1)
    np.testing.assert_array_equal(
        rv.label_source.get_label_arr(window),
        scene(default_class_id=1).label_source.get_label_arr(window),
    )
    assert rv.extent == geoxr.Window(0, 0, 900, 900)
    with pytest.raises(geoxr.ConfigError, match="disagree"):
        scene(default_class_id=0, label_vector_default_class_id=1)


def test_image_raster_source_kw(nc_stack, nc_strata, nc_class_config):
    scene = make_ss_scene(
        nc_stack,
        class_config=nc_class_config,
        label_raster_uri=nc_strata,
        image_raster_source_kw={"bbox": (100, 50, 300, 250), "channel_order": [3, 2, 1]},
        label_raster_source_kw={"bbox": (100, 50, 300, 250)},
    )
    assert scene.grid.shape == (200, 200) and scene.raster_source.num_channels == 3
    assert scene.label_source.grid.aligned_with(scene.grid)
    with rasterio.open(nc_strata) as ds:
        raw = ds.read(1, window=rasterio.windows.Window(50, 100, 200, 200))
    np.testing.assert_array_equal(
        scene.label_source.get_label_arr(scene.grid.extent), np.where(raw < 0, 0, raw)
    )


def test_a_label_raster_on_another_grid_leaves_its_bbox_to_the_image(
    nc_stack, nc_strata, nc_class_config, tmp_path
):
    from affine import Affine
    from rasterio.enums import Resampling

    # The land-cover raster at half the resolution: read onto the image's grid.
    coarse = tmp_path / "strata_coarse.tif"
    with rasterio.open(nc_strata) as src:
        shape = (src.height // 2, src.width // 2)
        profile = src.profile | {
            "height": shape[0],
            "width": shape[1],
            "transform": src.transform * Affine.scale(2),
        }
        with rasterio.open(coarse, "w", **profile) as dst:
            dst.write(src.read(out_shape=(1, *shape), resampling=Resampling.nearest))
    image_kw = {"bbox": (100, 50, 300, 250)}
    scenes = [
        make_ss_scene(
            nc_stack,
            class_config=nc_class_config,
            label_raster_uri=coarse,
            image_raster_source_kw=image_kw,
            label_raster_source_kw=label_kw,
        )
        # A bbox away from the image's crop too: the overlap check looked at it.
        for label_kw in ({}, {"bbox": (50, 25, 150, 125)}, {"bbox": (0, 0, 10, 10)})
    ]
    plain, *cropped = (s.label_source.get_label_arr(s.grid.extent) for s in scenes)
    assert plain.shape == (200, 200) and len(np.unique(plain)) > 2
    for labels in cropped:
        np.testing.assert_array_equal(labels, plain)


def test_aoi_from_file_in_other_crs_is_reprojected(nc_stack, nc_strata, nc_class_config, tmp_path):
    image = RasterioSource(nc_stack)
    left, bottom, _, top = image.bounds
    aoi = shapely.box(left + 1000, bottom + 1000, left + 6000, top - 2000)
    lonlat = gpd.GeoSeries([aoi], crs=image.crs.to_wkt()).to_crs("EPSG:4326")
    path = write_aoi(tmp_path / "aoi.geojson", lonlat, "EPSG:4326")
    assert VectorSource(path).get_geodataframe().crs.to_epsg() == 4326
    scene = make_ss_scene(
        nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata, aoi_uri=path
    )
    assert len(scene.aoi_polygons) == 1
    assert scene.aoi.bounds == pytest.approx(aoi.bounds, abs=1e-3)
    assert scene.aoi.symmetric_difference(aoi).area < 1e-6 * aoi.area


def test_aoi_of_points_raises(nc_stack, nc_class_config, tmp_path):
    image = RasterioSource(nc_stack)
    left, _, _, top = image.bounds
    path = write_aoi(
        tmp_path / "points.gpkg", [shapely.Point(left + 100, top - 100)], image.crs.to_wkt()
    )
    with pytest.raises(geoxr.AOIError, match=r"must hold Polygons or MultiPolygons.*\['Point'\]"):
        make_ss_scene(nc_stack, class_config=nc_class_config, aoi_uri=path)


def test_aoi_outside_raster_raises(nc_stack, nc_class_config, tmp_path):
    image = RasterioSource(nc_stack)
    _, _, right, top = image.bounds
    far = shapely.box(right + 100, top + 100, right + 5000, top + 5000)
    path = write_aoi(tmp_path / "far.gpkg", [far], image.crs.to_wkt())
    with pytest.raises(geoxr.AOIError, match=r"does not overlap the raster"):
        make_ss_scene(nc_stack, class_config=nc_class_config, aoi_uri=path)
    # Same AOI numbers but in lon/lat: also outside, and the message says to check the CRS.
    with pytest.raises(geoxr.AOIError, match="Check that the AOI is in the raster's CRS"):
        Scene("nc", image, aoi_polygons=[shapely.box(-78.7, 35.7, -78.6, 35.8)])


def test_aoi_that_only_touches_the_raster_raises(nc_stack, nc_class_config, tmp_path):
    # Right of the raster, sharing its right edge: no pixel of the raster is inside it.
    image = RasterioSource(nc_stack)
    _, bottom, right, top = image.bounds
    beside = shapely.box(right, bottom, right + 5000, top)
    path = write_aoi(tmp_path / "beside.gpkg", [beside], image.crs.to_wkt())
    with pytest.raises(
        geoxr.AOIError,
        match=r"AOI of scene 'lsat7_2000_stack' \(bounds \(644470\.5, 215488\.5, 649470\.5, "
        r"228114\.0\)\) does not overlap the raster \(bounds \(630534\.0, 215488\.5, "
        r"644470\.5, 228114\.0\), both in EPSG:32119\)",
    ):
        make_ss_scene(nc_stack, class_config=nc_class_config, aoi_uri=path)


def test_scene_aoi_validation(nc_stack):
    image = RasterioSource(nc_stack)
    left, bottom, _, _ = image.bounds
    a = shapely.box(left, bottom, left + 1000, bottom + 1000)
    b = shapely.box(left + 1000, bottom, left + 2000, bottom + 1000)
    scene = Scene("nc", image, aoi_polygons=[a, b])
    assert scene.aoi.area == pytest.approx(2e6)
    assert isinstance(scene.aoi_polygons, tuple)
    with pytest.raises(geoxr.AOIError, match="is empty"):
        Scene("nc", image, aoi_polygons=[])


def test_an_aoi_may_be_one_polygon_or_a_geodataframe_in_another_crs(nc_stack):
    # A single Polygon was iterated (a raw TypeError), a GeoDataFrame gave its column
    # names (a raw AttributeError), and a missing geometry a raw AttributeError.
    image = RasterioSource(nc_stack)
    left, bottom, _, _ = image.bounds
    box = shapely.box(left + 500, bottom + 500, left + 3000, bottom + 2000)
    one = Scene("nc", image, aoi_polygons=box)
    assert one.aoi_polygons == (box,) and one.aoi.equals(box)
    lonlat = gpd.GeoDataFrame({"name": ["field"]}, geometry=[box], crs=image.crs).to_crs(4326)
    scene = Scene("nc", image, aoi_polygons=lonlat)
    assert scene.aoi.symmetric_difference(box).area < 1e-3 * box.area  # back in EPSG:32119
    assert Scene("nc", image, aoi_polygons=lonlat.geometry).aoi.equals(scene.aoi)
    labels = geoxr.SemanticSegmentationLabels(
        grid=image.grid,
        class_config=ClassConfig(["a", "b"]),
        class_ids=image.grid.wrap(np.zeros(image.shape, np.uint8), dims=("y", "x")),
    )
    kept = labels.filter_by_aoi(box).class_ids.values != 2  # 2: the null class
    np.testing.assert_array_equal(kept, labels.filter_by_aoi([box]).class_ids.values != 2)
    window = image.grid.bounds_to_window(box.bounds)  # pixels the box's bounds touch
    assert 0.9 * window.height * window.width < kept.sum() <= window.height * window.width
    assert kept[window.slices].sum() == kept.sum()
    with pytest.raises(geoxr.AOIError, match=r"holds \['NoneType'\], not only shapely"):
        Scene("nc", image, aoi_polygons=[box, None])
    with pytest.raises(geoxr.AOIError, match="is a int; give a shapely Polygon"):
        Scene("nc", image, aoi_polygons=7)


def test_scene_with_labels_on_another_grid_raises(
    nc_stack, nc_strata, sn4_image, sn4_buildings, nc_class_config
):
    image = RasterioSource(nc_stack)
    cropped = SemanticSegmentationLabelSource(
        RasterioSource(nc_strata, bbox=(0, 0, 100, 100)), nc_class_config
    )
    with pytest.raises(geoxr.CRSMismatchError, match=r"(?s)labels are on grid .* but the raster"):
        Scene("nc", image, cropped)
    other = SemanticSegmentationLabelSource(
        RasterizedSource(
            VectorSource(sn4_buildings), grid=RasterioSource(sn4_image).grid, default_class_id=1
        ),
        ClassConfig(["background", "building"]),
    )
    with pytest.raises(geoxr.CRSMismatchError, match=r"target_grid=raster_source\.grid"):
        Scene("nc", image, other)
    assert issubclass(geoxr.CRSMismatchError, ValueError)


def test_a_label_raster_of_another_place_is_refused(sn4_image, nc_strata, nc_class_config):
    # Raleigh's land cover on an Atlanta image: every label read as the null class, and
    # training reported a NaN loss, with no error.
    with pytest.raises(
        geoxr.CRSMismatchError, match=r"Label raster .* and the image .* do not overlap"
    ):
        make_ss_scene(sn4_image, label_raster_uri=nc_strata, class_config=nc_class_config)


def test_make_ss_scene_both_label_kinds_raise(nc_stack, nc_strata, nc_polygons, nc_class_config):
    with pytest.raises(
        geoxr.ConfigError, match=r"Give label_raster_uri or label_vector_uri, not both.*got"
    ):
        make_ss_scene(
            nc_stack,
            class_config=nc_class_config,
            label_raster_uri=nc_strata,
            label_vector_uri=nc_polygons,
        )


def test_scene_without_labels(nc_stack):
    scene = make_ss_scene(nc_stack, class_config=ClassConfig(["a"]))
    assert scene.label_source is None and scene.class_config is None
    assert scene.grid == RasterioSource(nc_stack).grid


def test_an_aoi_edge_on_a_window_edge_marks_no_pixel_of_the_window_inside(nc_stack):
    from geoxr.label import aoi_window_mask

    grid = geoxr.RasterioSource(nc_stack).grid
    first_50_columns = shapely.box(*grid.window_bounds(geoxr.Window(0, 0, 443, 50)))
    # The window right of the AOI meets it in a line only.
    assert aoi_window_mask(first_50_columns, grid, geoxr.Window(0, 50, 64, 64)).all()
    assert not aoi_window_mask(first_50_columns, grid, geoxr.Window(0, 0, 64, 50)).any()
