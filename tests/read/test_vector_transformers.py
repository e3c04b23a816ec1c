import geopandas as gpd
import numpy as np
import pytest
import shapely

import geoxr


def test_nc_points_buffered_into_polygons_by_class(nc_points, nc_stack, nc_class_config):
    image = geoxr.RasterioSource(nc_stack)
    source = geoxr.VectorSource(
        nc_points,
        vector_transformers=[
            geoxr.ClassInferenceTransformer(nc_class_config, class_id_key="id"),
            geoxr.BufferTransformer("Point", class_bufs={6: 60.0}, default_buf=30.0),
        ],
    )
    gdf = source.get_geodataframe(crs=image.crs)
    assert len(gdf) == 1000 and set(gdf.geom_type) == {"Polygon"}
    water = gdf[gdf.class_id == 6]
    assert len(water) == 20  # README: 20 water points
    np.testing.assert_allclose(water.area, np.pi * 60**2, rtol=0.02)
    np.testing.assert_allclose(gdf[gdf.class_id == 5].area, np.pi * 30**2, rtol=0.02)
    raw = gpd.read_file(nc_points).to_crs(image.crs.to_wkt())
    centroids = gdf.geometry.centroid
    assert np.allclose(centroids.x, raw.geometry.x, atol=1e-6) and np.allclose(
        centroids.y, raw.geometry.y, atol=1e-6
    )
    labels = geoxr.RasterizedSource(source, grid=image.grid)
    counts = np.bincount(labels.data.values.ravel(), minlength=8)
    assert counts[6] > 0 and counts[5] > counts[6]


def test_class_inference_by_name_filter_and_default(tmp_path, nc_polygons, nc_class_config):
    gdf = gpd.read_file(nc_polygons)
    gdf["id"] = np.nan
    gdf.loc[0, "label"] = "not a class"
    gdf.loc[1, "label"] = None
    gdf.loc[1, "kind"] = "lake"
    path = tmp_path / "poly.gpkg"
    gdf.to_file(path)
    transformer = geoxr.ClassInferenceTransformer(
        nc_class_config, class_id_to_filter={6: {"kind": "lake"}}
    )
    with pytest.warns(geoxr.GeoxrWarning, match="1 of 34 features could not be classified"):
        out = geoxr.VectorSource(path, vector_transformers=[transformer]).get_geodataframe()
    assert len(out) == 33
    expected = [nc_class_config.names.index(lbl) for lbl in gdf.label[2:]]
    assert out.class_id.tolist() == [6, *expected]
    with_default = geoxr.ClassInferenceTransformer(nc_class_config, default_class_id=0)
    assert len(with_default.transform(gdf)) == 34


def test_shift_transformer_moves_labels_in_map_units(sn4_buildings):
    shifted = geoxr.VectorSource(
        sn4_buildings, vector_transformers=[geoxr.ShiftTransformer(2.0, -1.5)]
    )
    a = geoxr.VectorSource(sn4_buildings).get_geodataframe()
    b = shifted.get_geodataframe()
    assert all(
        shapely.equals_exact(shapely.affinity.translate(g, 2.0, -1.5), h, 1e-9)
        for g, h in zip(a.geometry, b.geometry, strict=True)
    )


def test_lines_buffered_per_class_polygons_pass_through():
    gdf = gpd.GeoDataFrame(
        {"class_id": [1, 2, 3]},
        geometry=[
            shapely.LineString([(0, 0), (100, 0)]),
            shapely.LineString([(0, 50), (0, 150)]),
            shapely.box(0, 0, 5, 5),
        ],
        crs="EPSG:32616",
    )
    out = geoxr.BufferTransformer(["LineString"], class_bufs={1: 2.0}, default_buf=5.0).transform(
        gdf
    )
    assert list(out.geom_type) == ["Polygon", "Polygon", "Polygon"]
    assert out.area[0] == pytest.approx(100 * 4 + np.pi * 4, rel=0.01)
    assert out.area[1] == pytest.approx(100 * 10 + np.pi * 25, rel=0.01)
    assert out.geometry[2].equals(gdf.geometry[2])


def test_class_ids_that_name_no_class_are_refused(nc_polygons, nc_class_config):
    # They were kept and burnt into the label rasters, where training met ids past
    # its classes (or 2.5 truncated to 2).
    gdf = gpd.read_file(nc_polygons)
    transformer = geoxr.ClassInferenceTransformer(nc_class_config, class_id_key="id")
    assert transformer.transform(gdf).class_id.tolist() == gdf.id.tolist()
    n = len(nc_class_config.ensure_null_class())
    gdf["id"] = gdf["id"].astype(float)
    gdf.loc[[3, 4], "id"] = [n, 2.5]
    with pytest.raises(
        geoxr.ClassConfigError,
        match=rf"'id' values of 2 features are not class ids .*\(0\.\.{n - 1}: .*: \[2\.5, {n}\.0\]",
    ):
        transformer.transform(gdf)


def test_a_default_class_id_given_first_says_the_class_config_comes_first():
    # Raster Vision's ClassInferenceTransformer(1): "'int' object has no attribute
    # 'ensure_null_class'".
    with pytest.raises(geoxr.ClassConfigError, match=r"takes the class config first, got 1"):
        geoxr.ClassInferenceTransformer(1)
