"""Tests of geoxr.read.vector (VectorSource) on real GeoJSON and Shapefile labels."""

import pickle
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

import geoxr
from geoxr import VectorSource

# A self-intersecting "bow-tie": two triangles of 25 m2 each meeting at (5, 5).
BOW_TIE = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])


def test_spacenet_geojson_legacy_crs(sn4_buildings, sn4_image):
    gdf = VectorSource(sn4_buildings).get_geodataframe()
    assert gdf.crs.to_epsg() == 32616
    assert len(gdf) == 43
    assert set(gdf.geom_type) == {"Polygon"}
    assert gdf.geometry.is_valid.all()
    assert (gdf["building"] == "yes").all()
    assert int((gdf["truncated"] == 1).sum()) == 6
    # Projected metres, inside the image (the legacy member is honoured, not RFC 7946 lon/lat).
    with rasterio.open(sn4_image) as ds:
        left, bottom, right, top = ds.bounds
    minx, miny, maxx, maxy = gdf.total_bounds
    assert left <= minx and maxx <= right and bottom <= miny and maxy <= top


def test_spacenet_reprojected_to_lonlat(sn4_buildings):
    gdf = VectorSource(sn4_buildings).get_geodataframe(crs="EPSG:4326")
    assert gdf.crs.to_epsg() == 4326
    lon, lat = gdf.geometry.union_all().centroid.coords[0]
    assert lon == pytest.approx(-84.48, abs=0.01) and lat == pytest.approx(33.64, abs=0.01)


def test_nc_shapefile_reprojected(nc_polygons):
    src = VectorSource(nc_polygons)
    native = src.get_geodataframe()
    assert native.crs.to_epsg() == 3358 and len(native) == 34
    assert native["id"].value_counts().sort_index().tolist() == [3, 1, 4, 7, 7, 7, 5]
    projected = src.get_geodataframe(crs="EPSG:32119")
    assert projected.crs.to_epsg() == 32119 and len(projected) == 34
    expected = gpd.read_file(nc_polygons).to_crs("EPSG:32119")
    for got, want in zip(projected.geometry, expected.geometry, strict=True):
        assert got.equals_exact(want, tolerance=1e-6)
    # NAD83(HARN) vs NAD83: the same projection, under 1 m apart.
    shift = shapely.distance(
        native.geometry.centroid.to_numpy(), projected.geometry.centroid.to_numpy()
    )
    assert 0 < shift.max() < 1.0
    np.testing.assert_array_equal(projected["id"], native["id"])


def test_get_geodataframe_returns_copies(nc_polygons):
    src = VectorSource(nc_polygons)
    first = src.get_geodataframe()
    first["id"] = -1
    assert (src.get_geodataframe()["id"] > 0).all()
    assert src.get_geodataframe(crs="EPSG:3358").crs.to_epsg() == 3358


def test_pickle_round_trip(nc_polygons):
    src = VectorSource(nc_polygons, on_invalid="drop")
    src.get_geodataframe()
    clone = pickle.loads(pickle.dumps(src))
    assert clone.get_geodataframe(crs="EPSG:32119").geometry.area.sum() == pytest.approx(
        src.get_geodataframe(crs="EPSG:32119").geometry.area.sum()
    )


@pytest.fixture
def bow_tie_gpkg(tmp_path):
    path = tmp_path / "bow_tie.gpkg"
    frame = gpd.GeoDataFrame(
        {"class_id": [1, 2]}, geometry=[BOW_TIE, shapely.box(20, 20, 30, 30)], crs="EPSG:32616"
    )
    frame.to_file(path, layer="labels")
    return path


def test_invalid_polygon_repaired_with_warning(bow_tie_gpkg):
    src = VectorSource(bow_tie_gpkg)
    with pytest.warns(geoxr.GeoxrWarning, match=r"1 invalid geometries .* repaired"):
        gdf = src.get_geodataframe()
    assert len(gdf) == 2 and gdf.geometry.is_valid.all()
    assert gdf.geometry.iloc[0].area == pytest.approx(50.0)  # both triangles kept
    assert gdf["class_id"].tolist() == [1, 2]


def test_invalid_polygon_dropped_with_warning(bow_tie_gpkg):
    src = VectorSource(bow_tie_gpkg, layer="labels", on_invalid="drop")
    with pytest.warns(geoxr.GeoxrWarning, match=r"1 invalid geometries .* dropped"):
        gdf = src.get_geodataframe()
    assert gdf["class_id"].tolist() == [2]
    assert gdf.geometry.iloc[0].equals(shapely.box(20, 20, 30, 30))


def test_invalid_polygon_raises(bow_tie_gpkg):
    src = VectorSource(bow_tie_gpkg, on_invalid="raise")
    with pytest.raises(geoxr.VectorReadError, match=r"1 invalid geometries .*Self-intersection"):
        src.get_geodataframe()


def test_bad_on_invalid():
    with pytest.raises(ValueError, match="on_invalid must be"):
        VectorSource("x.gpkg", on_invalid="ignore")


@pytest.fixture
def no_crs_shapefile(tmp_path):
    """A Shapefile without .prj: coordinates in EPSG:32616 metres, undeclared."""
    path = tmp_path / "no_crs.shp"
    frame = gpd.GeoDataFrame(
        {"class_id": [1]}, geometry=[shapely.box(733700, 3724800, 733800, 3724900)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: writing without a CRS
        frame.to_file(path)
    assert not path.with_suffix(".prj").exists()
    return path


def test_file_without_crs_raises(no_crs_shapefile):
    with pytest.raises(geoxr.NoGeoreferenceError, match=r"no_crs\.shp' declares no CRS"):
        VectorSource(no_crs_shapefile).get_geodataframe()


def test_file_without_crs_uses_given_crs(no_crs_shapefile):
    gdf = VectorSource(no_crs_shapefile, crs="EPSG:32616").get_geodataframe()
    assert gdf.crs.to_epsg() == 32616
    assert gdf.geometry.iloc[0].equals(shapely.box(733700, 3724800, 733800, 3724900))
    lonlat = VectorSource(no_crs_shapefile, crs=32616).get_geodataframe(crs="EPSG:4326")
    assert lonlat.geometry.iloc[0].centroid.x == pytest.approx(-84.48, abs=0.01)


def test_given_crs_does_not_override_file_crs(nc_polygons):
    gdf = VectorSource(nc_polygons, crs="EPSG:32616").get_geodataframe()
    assert gdf.crs.to_epsg() == 3358


def test_geoparquet(nc_polygons, tmp_path):
    path = tmp_path / "polygons.parquet"
    gpd.read_file(nc_polygons).to_parquet(path)
    gdf = VectorSource(path).get_geodataframe()
    assert gdf.crs.to_epsg() == 3358 and len(gdf) == 34
    expected = VectorSource(nc_polygons).get_geodataframe(crs="EPSG:32119")
    projected = VectorSource(path).get_geodataframe(crs="EPSG:32119")
    assert projected.geometry.geom_equals_exact(expected.geometry, tolerance=1e-6).all()
    assert projected["id"].tolist() == expected["id"].tolist()


@pytest.mark.parametrize("name", ["missing.geojson", "missing.parquet", "missing.shp"])
def test_missing_file_raises(tmp_path, name):
    src = VectorSource(tmp_path / name)  # lazy: nothing read yet
    with pytest.raises(geoxr.VectorReadError, match=rf"Cannot read vector file .*{name}"):
        src.get_geodataframe()
    assert issubclass(geoxr.VectorReadError, OSError)


def test_a_table_without_geometries_is_refused(data_dir):
    # A CSV reads as a plain DataFrame: a raw AttributeError ('DataFrame' has no 'crs').
    table = data_dir / "neon_osbs_trees" / "OSBS_029.csv"
    with pytest.raises(geoxr.VectorReadError, match=r"OSBS_029.csv' has no geometry column"):
        VectorSource(table).get_geodataframe()


def test_missing_layer_raises(bow_tie_gpkg):
    with pytest.raises(geoxr.VectorReadError, match="check the path and layer"):
        VectorSource(bow_tie_gpkg, layer="nope").get_geodataframe()


def test_projected_geojson_without_a_crs_member_needs_the_crs_it_is_in(sn4_buildings, tmp_path):
    import json

    collection = json.loads(sn4_buildings.read_text())
    del collection["crs"]  # GDAL now reads it as longitude/latitude (RFC 7946)
    bare = tmp_path / "buildings.geojson"
    bare.write_text(json.dumps(collection))
    with pytest.raises(geoxr.NoGeoreferenceError, match=r"are not degrees\. Pass the CRS"):
        VectorSource(bare).get_geodataframe()
    given = VectorSource(bare, crs="EPSG:32616").get_geodataframe(crs="EPSG:32616")
    expected = VectorSource(sn4_buildings).get_geodataframe()
    np.testing.assert_allclose(given.total_bounds, expected.total_bounds)  # not inf


def test_a_crs_nobody_knows_is_a_geoxr_error(sn4_buildings):
    # rasterio's CRSError came out raw.
    with pytest.raises(
        geoxr.ConfigError, match=r"crs of VectorSource .* 'EPSG:999999' is not a CRS"
    ):
        geoxr.VectorSource(sn4_buildings, crs="EPSG:999999")
    source = geoxr.VectorSource(sn4_buildings)
    with pytest.raises(geoxr.ConfigError, match=r"crs asked of VectorSource .* 'UTM 16' is not"):
        source.get_geodataframe(crs="UTM 16")
    assert source.get_geodataframe(crs=32616).crs.to_epsg() == 32616
