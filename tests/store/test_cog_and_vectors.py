import errno
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from distributed import Client, LocalCluster
from rasterio.crs import CRS
from rasterio.env import get_gdal_config
from rasterio.features import rasterize
from rio_cogeo.cogeo import cog_validate

import geoxr
import geoxr.store.cog
from geoxr.errors import LabelsError, OutputPathError
from geoxr.grid import Grid
from geoxr.read._gdal import READ_ONCE_CACHE_BYTES
from geoxr.store import (
    read_cog_labels,
    write_cog_labels,
    write_vector_labels,
    write_zarr_labels,
)
from geoxr.testing import raise_if_dask_computes


@pytest.fixture(scope="module")
def nc_labels(nc_bundle, nc_stack):
    return geoxr.predict_scene(
        nc_bundle, geoxr.RasterioSource(nc_stack), chip_size=64, stride=32, block_size=128
    )


@pytest.fixture(scope="module")
def nc_land_cover(nc_stack, nc_strata, nc_class_config):
    """The real NC land-cover map as labels (class ids only), in 128-pixel blocks."""
    scene = geoxr.make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    ids = scene.label_source.data.chunk({"y": 128, "x": 128}).astype(np.uint8)
    return geoxr.SemanticSegmentationLabels(
        grid=scene.grid, class_config=nc_class_config, class_ids=ids
    )


def test_cog_is_valid_georeferenced_and_equal(tmp_path, nc_labels, nc_stack):
    ids_path, scores_path = tmp_path / "ids.tif", tmp_path / "scores.tif"
    write_cog_labels(nc_labels, ids_path, scores_path=scores_path, blocksize=128, progress=False)
    for path in (ids_path, scores_path):
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
    with rasterio.open(ids_path) as cog, rasterio.open(nc_stack) as src:
        assert (cog.crs, cog.transform, cog.shape) == (src.crs, src.transform, src.shape)
        assert cog.dtypes[0] == "uint8" and cog.nodata == nc_labels.null_class_id
        assert cog.overviews(1)[0] == 2
        assert cog.colormap(1)[1] == (*nc_labels.class_config.colors[1], 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.tif", "scores.tif"]  # no leftovers
    back = read_cog_labels(ids_path, scores_path=scores_path)
    np.testing.assert_array_equal(back.class_ids.values, nc_labels.class_ids.values)
    np.testing.assert_array_equal(back.scores.values, nc_labels.scores.values)
    assert back.class_config == nc_labels.class_config


def test_labels_save_themselves_as_the_store_saves_them(tmp_path, nc_land_cover):
    # The "Labels: save(...)": there was no such method.
    for name in ("ids.zarr", "ids.tif"):
        written = nc_land_cover.save(tmp_path / name, progress=False)
        back = geoxr.SemanticSegmentationLabelStore(written).get_labels()
        np.testing.assert_array_equal(back.class_ids.values, nc_land_cover.class_ids.values)
        assert back.class_ids.rio.transform() == nc_land_cover.grid.transform
    with pytest.raises(geoxr.OutputPathError, match=r"'\.zarr' or '\.tif'"):
        nc_land_cover.save(tmp_path / "ids.png")


def test_cog_written_from_a_local_cluster_equals_the_threaded_write(tmp_path, nc_labels):
    paths = {}
    for where in ("threads", "cluster"):
        ids_path, scores_path = tmp_path / where / "ids.tif", tmp_path / where / "scores.tif"
        if where == "threads":
            write_cog_labels(nc_labels, ids_path, scores_path=scores_path, progress=False)
        else:
            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster),
            ):
                write_cog_labels(nc_labels, ids_path, scores_path=scores_path, progress=False)
        paths[where] = (ids_path, scores_path)
    for local, remote in zip(paths["threads"], paths["cluster"], strict=True):
        assert cog_validate(str(remote))[0]
        with rasterio.open(local) as a, rasterio.open(remote) as b:
            assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)
            # Workers run torch with one thread: scores may differ in the last bits.
            np.testing.assert_allclose(a.read(), b.read(), atol=1e-5, equal_nan=True)
    with rasterio.open(paths["threads"][0]) as a, rasterio.open(paths["cluster"][0]) as b:
        np.testing.assert_array_equal(a.read(), b.read())  # class ids: exactly


def test_cog_writes_cap_gdal_block_cache_and_give_the_user_size_back(
    tmp_path, nc_labels, monkeypatch, gdal_cache_of_256_mib
):
    # Written tiles stay in GDAL's block cache (5% of RAM by default) until evicted: a
    # 20000 x 20000 class ids COG grew the process by ~280 MiB more than a 4000 x 4000 one.
    seen = {}

    def looking(name, function):
        def call(*args, **kwargs):
            seen.setdefault(name, set()).add(get_gdal_config("GDAL_CACHEMAX"))
            return function(*args, **kwargs)

        monkeypatch.setattr(geoxr.store.cog, name, call)

    looking("_write_levels", geoxr.store.cog._write_levels)
    looking("_make_cog", geoxr.store.cog._make_cog)
    write_cog_labels(
        nc_labels, tmp_path / "ids.tif", scores_path=tmp_path / "s.tif", progress=False
    )
    assert seen == {"_write_levels": {READ_ONCE_CACHE_BYTES}, "_make_cog": {READ_ONCE_CACHE_BYTES}}
    assert get_gdal_config("GDAL_CACHEMAX") == gdal_cache_of_256_mib


def test_missing_cog_is_an_incomplete_output(tmp_path):
    with pytest.raises(geoxr.IncompleteOutputError, match="No COG"):
        read_cog_labels(tmp_path / "nope.tif")


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".parquet"])
def test_polygons_rasterize_back_to_the_class_ids(tmp_path, nc_land_cover, suffix):
    nc_labels = nc_land_cover
    path = write_vector_labels(nc_labels, tmp_path / f"classes{suffix}")
    gdf = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path)
    assert CRS.from_user_input(gdf.crs) == nc_labels.grid.crs
    ids = nc_labels.class_ids.values
    burned = rasterize(
        zip(gdf.geometry, gdf.class_id, strict=True),
        out_shape=ids.shape,
        transform=nc_labels.grid.transform,
        fill=nc_labels.null_class_id,
    )
    np.testing.assert_array_equal(burned, ids)
    assert set(gdf.class_name) == {
        nc_labels.class_config.names[i] for i in np.unique(gdf.class_id)
    }


def test_geojson_refuses_a_crs_it_cannot_name_and_gpkg_keeps_it(tmp_path, nc_land_cover):
    # GeoJSON names a CRS by its EPSG code alone: one without a code was left out, and
    # readers took the projected coordinates (US feet here) for longitude and latitude.
    crs = CRS.from_proj4("+proj=utm +zone=16 +datum=WGS84 +units=us-ft +no_defs")
    assert crs.to_authority() is None
    grid = Grid(crs, nc_land_cover.grid.transform, nc_land_cover.grid.shape)
    labels = geoxr.SemanticSegmentationLabels(
        grid=grid,
        class_config=nc_land_cover.class_config,
        class_ids=nc_land_cover.class_ids.rio.write_crs(crs),
    )
    out = tmp_path / "out"
    with (
        raise_if_dask_computes(),
        pytest.raises(OutputPathError, match=r"GeoJSON names a CRS by an authority's code"),
    ):
        write_vector_labels(labels, out / "classes.geojson")
    assert not out.exists()
    gdf = gpd.read_file(write_vector_labels(labels, out / "classes.gpkg"))
    assert CRS.from_user_input(gdf.crs) == crs
    # Another authority's code (USA Albers, ESRI:102003) is one GeoJSON can name.
    albers = CRS.from_user_input("ESRI:102003")
    in_albers = geoxr.SemanticSegmentationLabels(
        grid=Grid(albers, grid.transform, grid.shape),
        class_config=labels.class_config,
        class_ids=labels.class_ids.rio.write_crs(albers),
    )
    gdf = gpd.read_file(write_vector_labels(in_albers, out / "albers.geojson"))
    assert CRS.from_user_input(gdf.crs).to_authority() == ("ESRI", "102003")


def test_vector_simplify_and_min_area(tmp_path, nc_land_cover):
    nc_labels = nc_land_cover
    full = gpd.read_file(write_vector_labels(nc_labels, tmp_path / "a.geojson"))
    small = gpd.read_file(
        write_vector_labels(nc_labels, tmp_path / "b.geojson", min_area=28.5**2 * 50, simplify=30)
    )
    assert len(small) < len(full)
    assert (small.area >= 28.5**2 * 50).all()
    with pytest.raises(ValueError, match="geojson"):
        write_vector_labels(nc_labels, tmp_path / "c.shp")


def test_a_cog_store_saved_again_reads_back_the_new_labels(tmp_path, nc_labels, nc_land_cover):
    store = geoxr.SemanticSegmentationLabelStore(tmp_path / "p.tif", progress=False)
    # Reads in this thread, as its GDAL handles are cached per thread.
    with dask.config.set(scheduler="synchronous"):
        store.save(nc_labels)
        first = store.get_labels()
        np.testing.assert_array_equal(first.class_ids.values, nc_labels.class_ids.values)
        assert first.scores is not None
        # Other labels, without scores, into the same store: nothing of the first is read.
        store.save(nc_land_cover)
        again = store.get_labels()
        np.testing.assert_array_equal(again.class_ids.values, nc_land_cover.class_ids.values)
    assert again.scores is None and not (tmp_path / "p-scores.tif").exists()


def test_a_cog_store_save_that_fails_keeps_the_earlier_class_ids_and_scores(tmp_path, monkeypatch):
    # The scores of an earlier save were deleted before the new class ids were
    # written: a failed write left the old class ids without their scores.
    labels = _recorded_labels(tmp_path, [])
    store = geoxr.SemanticSegmentationLabelStore(tmp_path / "p.tif", progress=False)
    store.save(labels)
    saved = {p: p.read_bytes() for p in (store.uri, store.scores_uri)}
    ids_only = geoxr.SemanticSegmentationLabels(
        grid=labels.grid, class_config=labels.class_config, class_ids=labels.class_ids
    )

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(geoxr.store.cog, "_make_cog", fail)
        with pytest.raises(OSError, match="disk full"):
            store.save(ids_only)
    assert {p: p.read_bytes() for p in saved} == saved
    store.save(ids_only)  # the old scores go once the new class ids are in place
    assert not store.scores_uri.exists() and store.get_labels().scores is None


@pytest.mark.parametrize("suffix", [".tif", ".zarr"])
def test_class_ids_the_class_config_lacks_are_an_error_and_leave_no_output(
    tmp_path, nc_land_cover, suffix
):
    ids = nc_land_cover.class_ids.astype(np.int64)
    ids = ids.where(ids != 5, 260)
    wrong = geoxr.SemanticSegmentationLabels(
        grid=nc_land_cover.grid, class_config=nc_land_cover.class_config, class_ids=ids
    )
    store = geoxr.SemanticSegmentationLabelStore(tmp_path / f"p{suffix}", progress=False)
    with pytest.raises(geoxr.ClassConfigError, match=r"p\.(tif|zarr)': class ids \[260\]"):
        store.save(wrong)  # a COG's uint8 made 260 class 4
    assert not (tmp_path / "p.tif").exists()
    if suffix == ".zarr":
        with pytest.raises(geoxr.IncompleteOutputError):
            store.get_labels()


def test_in_memory_labels_and_scores_chunked_by_class_are_written(tmp_path, nc_labels):
    in_memory = geoxr.SemanticSegmentationLabels(
        grid=nc_labels.grid,
        class_config=nc_labels.class_config,
        scores=nc_labels.scores.compute(),
        class_ids=nc_labels.class_ids.compute(),
    )
    write_cog_labels(
        in_memory, tmp_path / "ids.tif", scores_path=tmp_path / "s.tif", progress=False
    )
    by_class = geoxr.SemanticSegmentationLabels(
        grid=nc_labels.grid,
        class_config=nc_labels.class_config,
        scores=nc_labels.scores.chunk({"class": 1}),
    )
    store = geoxr.SemanticSegmentationLabelStore(tmp_path / "p.zarr", progress=False)
    store.save(by_class)
    for back in (
        read_cog_labels(tmp_path / "ids.tif", scores_path=tmp_path / "s.tif"),
        store.get_labels(),
    ):
        np.testing.assert_array_equal(back.class_ids.values, nc_labels.class_ids.values)
        np.testing.assert_array_equal(back.scores.values, nc_labels.scores.values)


def test_label_store_zarr_and_cog(tmp_path, nc_labels):
    zarr_store = geoxr.SemanticSegmentationLabelStore(tmp_path / "p.zarr", progress=False)
    cog_store = geoxr.SemanticSegmentationLabelStore(
        tmp_path / "p.tif",
        progress=False,
        vector_output=geoxr.VectorOutput(str(tmp_path / "p.gpkg")),
    )
    zarr_store.save(nc_labels)
    cog_store.save(nc_labels)
    assert cog_store.scores_uri.name == "p-scores.tif" and cog_store.scores_uri.exists()
    assert (tmp_path / "p.gpkg").exists()
    for store in (zarr_store, cog_store):
        back = store.get_labels()
        np.testing.assert_array_equal(back.class_ids.values, nc_labels.class_ids.values)
        np.testing.assert_array_equal(back.scores.values, nc_labels.scores.values)
    with pytest.raises(ValueError, match=r"'\.zarr' or '\.tif'"):
        geoxr.SemanticSegmentationLabelStore(tmp_path / "p.nc")


def _recorded_labels(tmp_path, computed):
    """Labels of scores read from a small GeoTIFF (a, b and null), appending to ``computed`` per block."""
    path = tmp_path / "scores-in.tif"
    rng = np.random.default_rng(5)
    profile = dict(driver="GTiff", width=48, height=40, count=3, dtype="float32")
    with rasterio.open(
        path, "w", **profile, crs="EPSG:32616", transform=rasterio.Affine(2, 0, 500, 0, -2, 900)
    ) as dst:
        dst.write(rng.random((3, 40, 48), np.float32))
    source = geoxr.RasterioSource(path)

    def record(block):
        computed.append(block.shape)
        return block

    scores = source.data.rename({"band": "class"}).chunk({"y": 16, "x": 16})
    meta = np.empty((0, 0, 0), np.float32)  # else dask calls record to find it out
    scores = scores.copy(data=scores.data.map_blocks(record, meta=meta))
    return geoxr.SemanticSegmentationLabels(
        grid=source.grid, class_config=geoxr.ClassConfig(["a", "b"]), scores=scores
    )


def _cog(labels, path, **kw):
    return write_cog_labels(labels, path, progress=False, **kw)


def _store(labels, path, **kw):
    return geoxr.SemanticSegmentationLabelStore(path, progress=False, **kw).save(labels)


@pytest.mark.parametrize(
    ("write", "where", "match"),
    [
        (_cog, "dir/out.tif", r"'[^']*out\.tif' is a directory; expected a file"),
        (partial(_cog, scores_path="dir/s.tif"), "ids.tif", r"'[^']*s\.tif' is a directory"),
        (_cog, "file/out.tif", r"'[^']*out\.tif' is in '[^']*file', which is a file"),
        (partial(_cog, scores_path="./ids.tif"), "ids.tif", r"the class ids' COG path"),
        (write_vector_labels, "dir/v.gpkg", r"'[^']*v\.gpkg' is a directory"),
        (write_vector_labels, "file/sub/v.geojson", r"'[^']*v\.geojson' is in '[^']*file'"),
        (_store, "file/p.zarr", r"'[^']*p\.zarr' is in '[^']*file', which is a file"),
        (
            partial(write_zarr_labels, progress=False),
            "file/sub/p.zarr",
            r"Zarr store path '[^']*p\.zarr' is in '[^']*file', which is a file",
        ),
        (_store, "file/p.tif", r"'[^']*p\.tif' is in '[^']*file', which is a file"),
        (_store, "dir/p.tif", r"'[^']*p-scores\.tif' is a directory; expected a file"),
        (
            partial(_store, write_scores=False),
            "dir/p.tif",
            r"'[^']*p-scores\.tif' is a directory; expected a file",
        ),
        (
            partial(_store, vector_output=geoxr.VectorOutput("dir/v.geojson")),
            "p.tif",
            r"'[^']*v\.geojson' is a directory",
        ),
        (
            partial(_store, vector_output=geoxr.VectorOutput("v.shp")),
            "p.zarr",
            r"'v\.shp': use a \.geojson, \.gpkg, \.parquet or \.geoparquet",
        ),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_any_compute(
    tmp_path, monkeypatch, write, where, match
):
    # A directory where an output file goes made the COG and vector writers fail
    # after the whole prediction (IsADirectoryError), the vector writer leaving its
    # '.partial-' file; a file where a folder goes, a NotADirectoryError.
    computed = []
    labels = _recorded_labels(tmp_path, computed)
    monkeypatch.chdir(tmp_path)
    for name in ("dir/out.tif", "dir/s.tif", "dir/v.gpkg", "dir/v.geojson", "dir/p-scores.tif"):
        Path(name).mkdir(parents=True)
    Path("file").write_text("in the way")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(OutputPathError, match=match):
        write(labels, where)
    assert computed == []
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, nothing left behind
    assert Path("file").read_text() == "in the way"


def _error_without_write_permission(write, labels, folder, where):
    """The type and message ``write(labels, where)`` raises where ``folder`` may not be written.

    A process not run as root writes under a read-only ``folder``; root, whom file
    modes do not stop, runs the writer in a forked child that has become ``nobody``.
    """
    folder.chmod(0o555)
    try:
        if os.geteuid() != 0:
            try:
                write(labels, where)
            except Exception as error:
                return type(error).__name__, str(error)
            return None, "written"
        read, send = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            try:
                os.setgid(65534)
                os.setuid(65534)
                write(labels, where)
                outcome = "None\nwritten"
            except BaseException as error:
                outcome = f"{type(error).__name__}\n{error}"
            os.write(send, outcome.encode())
            os._exit(0)
        os.close(send)
        with os.fdopen(read) as answer:
            kind, message = answer.read().split("\n", 1)
        os.waitpid(child, 0)
        return kind, message
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("write", "name"),
    [(_store, "p.zarr"), (_store, "p.tif"), (_cog, "p.tif"), (write_vector_labels, "sub/v.gpkg")],
)
def test_a_folder_this_process_may_not_write_in_is_refused_before_any_compute(
    tmp_path, request, write, name
):
    # It was a raw PermissionError from wherever the writer first made a file.
    computed = []
    labels = _recorded_labels(tmp_path, computed)
    # Outside tmp_path, whose parents only their owner may enter.
    folder = Path(tempfile.mkdtemp(prefix="geoxr-read-only-"))
    request.addfinalizer(partial(shutil.rmtree, folder, ignore_errors=True))
    kind, message = _error_without_write_permission(write, labels, folder, folder / name)
    assert kind == "OutputPathError", message
    assert f"is in '{folder}', where this process may not write" in message
    assert "make that directory writable" in message
    assert computed == [] and list(folder.iterdir()) == []


def test_user_errors_of_the_writers_are_geoxr_errors_saying_the_fix(tmp_path, nc_land_cover):
    with pytest.raises(OutputPathError, match=r"'[^']*p\.nc': expected a '\.zarr' or '\.tif'"):
        geoxr.SemanticSegmentationLabelStore(tmp_path / "p.nc")
    with pytest.raises(OutputPathError, match=r"'[^']*c\.shp': use a \.geojson, \.gpkg"):
        write_vector_labels(nc_land_cover, tmp_path / "c.shp")
    with pytest.raises(
        LabelsError, match=r"scores_path='[^']*s\.tif'.*labels have no scores.*scores_path=None"
    ):
        _cog(nc_land_cover, tmp_path / "ids.tif", scores_path=tmp_path / "s.tif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
@pytest.mark.parametrize("nothing", ["all null", "all below min_area"])
def test_a_vector_output_without_polygons_has_the_columns_of_one_with(
    tmp_path, nc_land_cover, suffix, nothing
):
    # It had a float64 class_id and class_name and (GeoPackage) no geometry type.
    # (GeoJSON has no schema: an empty one has no columns to read back.)
    def read(path):  # with arrow, types from the file's schema (else: an empty str is object)
        return (
            gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path, use_arrow=True)
        )

    full_path = write_vector_labels(nc_land_cover, tmp_path / f"full{suffix}")
    if nothing == "all null":
        ids = nc_land_cover.class_ids.where(False, nc_land_cover.null_class_id)
        null = geoxr.SemanticSegmentationLabels(
            grid=nc_land_cover.grid, class_config=nc_land_cover.class_config, class_ids=ids
        )
        empty_path = write_vector_labels(null, tmp_path / f"empty{suffix}")
    else:
        empty_path = write_vector_labels(nc_land_cover, tmp_path / f"empty{suffix}", min_area=1e12)
    full, empty = read(full_path), read(empty_path)
    assert len(full) > 0 and len(empty) == 0
    assert dict(empty.dtypes) == dict(full.dtypes)
    assert full["class_id"].dtype == np.int64 and full.geometry.geom_type.eq("Polygon").all()
    assert (
        CRS.from_user_input(empty.crs) == CRS.from_user_input(full.crs) == nc_land_cover.grid.crs
    )
    both = pd.concat([full, empty])
    assert dict(both.dtypes) == dict(full.dtypes)
    if suffix == ".gpkg":
        info = [pyogrio.read_info(p) for p in (full_path, empty_path)]
        assert [i["geometry_type"] for i in info] == ["Polygon", "Polygon"]
        assert [list(i["dtypes"]) for i in info] == [["int64", "object"]] * 2


def test_ids_and_scores_cogs_of_one_file_name_in_two_folders(tmp_path, nc_labels):
    # Both were built as '<name>.cog' in one work folder: the scores replaced the ids,
    # and a raw FileNotFoundError came after the scores had been moved into place.
    ids_path, scores_path = tmp_path / "ids" / "scene.tif", tmp_path / "scores" / "scene.tif"
    write_cog_labels(nc_labels, ids_path, scores_path=scores_path, blocksize=128, progress=False)
    with rasterio.open(ids_path) as ids, rasterio.open(scores_path) as scores:
        assert (ids.count, ids.dtypes[0], scores.count, scores.dtypes[0]) == (
            1,
            "uint8",
            len(nc_labels.class_config),
            "float32",
        )
    back = read_cog_labels(ids_path, scores_path=scores_path)
    np.testing.assert_array_equal(back.class_ids.values, nc_labels.class_ids.values)


@pytest.mark.parametrize("blocksize", [0, -16, 100, 32.0])
def test_a_blocksize_gdal_cannot_tile_is_refused(tmp_path, nc_land_cover, blocksize):
    # -16 looped for ever planning overviews; 100 gave a raw RasterBlockError.
    with pytest.raises(geoxr.ConfigError, match=r"positive multiple of 16"):
        write_cog_labels(nc_land_cover, tmp_path / "ids.tif", blocksize=blocksize, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_float_class_ids_with_nan_are_written_as_the_null_class(tmp_path, nc_land_cover):
    # As rioxarray's masked reads give them. The uint8 cast made NaN class 0.
    null = nc_land_cover.null_class_id
    ids = nc_land_cover.class_ids.astype(np.float32)
    ids = ids.where(ids != 1)  # class 1 unlabelled: NaN
    floats = geoxr.SemanticSegmentationLabels(
        grid=nc_land_cover.grid, class_config=nc_land_cover.class_config, class_ids=ids
    )
    expected = np.where(nc_land_cover.class_ids.values == 1, null, nc_land_cover.class_ids.values)
    write_cog_labels(floats, tmp_path / "ids.tif", blocksize=128, progress=False)
    np.testing.assert_array_equal(read_cog_labels(tmp_path / "ids.tif").class_ids.values, expected)
    write_zarr_labels(floats, tmp_path / "ids.zarr", scores=False, progress=False)
    back = geoxr.store.read_zarr_labels(tmp_path / "ids.zarr").class_ids
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.values, expected)
    fractional = floats.class_ids.where(floats.class_ids != 2, 2.5)
    halves = geoxr.SemanticSegmentationLabels(
        grid=floats.grid, class_config=floats.class_config, class_ids=fractional
    )
    with pytest.raises(geoxr.ClassConfigError, match=r"class ids \[2\.5\] are not whole numbers"):
        write_cog_labels(halves, tmp_path / "halves.tif", blocksize=128, progress=False)
    assert not (tmp_path / "halves.tif").exists()


def test_scores_with_another_class_count_are_refused(nc_labels):
    # They were written, and a COG of them could not be read back (a raw xarray error).
    with pytest.raises(LabelsError, match=r"expected \(8, y, x\), one channel per class"):
        geoxr.SemanticSegmentationLabels(
            grid=nc_labels.grid,
            class_config=nc_labels.class_config,
            scores=nc_labels.scores[:-1],
        )
    with pytest.raises(LabelsError, match=r"expected \(8, y, x\)"):
        geoxr.SemanticSegmentationLabels(
            grid=nc_labels.grid,
            class_config=nc_labels.class_config,
            scores=nc_labels.scores.transpose("y", "x", "class"),
        )


def test_vector_classes_by_id_or_name_and_bad_ones_refused(tmp_path, nc_land_cover):
    # Bad ids, names and negative options wrote an empty file that looked finished.
    names = list(nc_land_cover.class_config.names)
    by_name = write_vector_labels(nc_land_cover, tmp_path / "a.gpkg", class_ids=[names[1], 2])
    by_id = write_vector_labels(nc_land_cover, tmp_path / "b.gpkg", class_ids=[1, 2])
    a, b = gpd.read_file(by_name), gpd.read_file(by_id)
    assert len(a) > 0 and set(a.class_id) == {1, 2}
    assert a.geometry.area.sum() == pytest.approx(b.geometry.area.sum())
    again = write_vector_labels(
        nc_land_cover, tmp_path / "c.gpkg", class_ids=[1, names[1], 2], min_area=np.float32(0)
    )
    assert len(gpd.read_file(again)) == len(b)  # each class once; numpy numbers are numbers
    (tmp_path / "c.gpkg").unlink()
    for bad in ([99], [-1], ["no such class"], [1.5], [True]):
        with pytest.raises(geoxr.ClassConfigError, match=r"neither ids \(0\.\.7\) nor names"):
            write_vector_labels(nc_land_cover, tmp_path / "c.gpkg", class_ids=bad)
    with pytest.raises(geoxr.ConfigError, match=r"min_area must be a number >= 0"):
        write_vector_labels(nc_land_cover, tmp_path / "c.gpkg", min_area=-1)
    store = geoxr.SemanticSegmentationLabelStore(
        tmp_path / "d.tif",
        vector_output=geoxr.VectorOutput(str(tmp_path / "d.gpkg"), class_ids=(99,)),
        progress=False,
    )
    with pytest.raises(geoxr.ClassConfigError):
        store.save(nc_land_cover)  # before any raster is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gpkg", "b.gpkg"]


def test_a_scores_cog_on_another_file_system_is_copied_into_place(
    tmp_path, nc_labels, monkeypatch
):
    # The COGs are built beside the class ids: a rename to another file system fails.
    scores_path = tmp_path / "elsewhere" / "scores.tif"
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == scores_path and Path(src).suffix == ".cog":
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_cog_labels(
        nc_labels, tmp_path / "ids.tif", scores_path=scores_path, blocksize=128, progress=False
    )
    assert cog_validate(str(scores_path))[0]
    np.testing.assert_array_equal(
        read_cog_labels(tmp_path / "ids.tif", scores_path=scores_path).scores.values,
        nc_labels.scores.values,
    )
    assert sorted(p.name for p in scores_path.parent.iterdir()) == ["scores.tif"]


def test_polygons_of_an_earlier_save_do_not_outlive_its_raster(
    tmp_path, nc_labels, nc_land_cover, monkeypatch
):
    # A save that died between its COG and its polygons left the earlier save's polygons
    # beside the new COG, as if they were its own.
    polygons = geoxr.VectorOutput(str(tmp_path / "p.gpkg"))
    store = geoxr.SemanticSegmentationLabelStore(
        tmp_path / "p.tif", vector_output=polygons, progress=False
    )
    store.save(nc_land_cover)
    assert (tmp_path / "p.gpkg").exists()

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # the process stopped here

    monkeypatch.setattr(geoxr.store.label_store, "write_vector_labels", die)
    with pytest.raises(KeyboardInterrupt):
        store.save(nc_labels)
    np.testing.assert_array_equal(store.get_labels().class_ids.values, nc_labels.class_ids.values)
    assert not (tmp_path / "p.gpkg").exists()
