import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import dask.array as da
import numpy as np
import pytest
import rasterio
import rioxarray
import shapely
import torch
import xarray as xr
import zarr
from distributed import Client, LocalCluster
from rasterio.crs import CRS

import geoxr
from geoxr.grid import Window
from geoxr.store import read_zarr_labels, write_zarr_labels


@pytest.fixture(scope="module")
def nc_labels(nc_bundle, nc_stack):
    return geoxr.predict_scene(
        nc_bundle, geoxr.RasterioSource(nc_stack), chip_size=64, stride=32, block_size=128
    )


def test_zarr_round_trip_with_cf_georeference(tmp_path, nc_labels, nc_stack):
    path = write_zarr_labels(nc_labels, tmp_path / "pred.zarr", progress=False)
    ds = xr.open_zarr(path, decode_coords="all", consolidated=False)
    with rasterio.open(nc_stack) as src:
        for name in ("scores", "class_id"):
            attrs = json.loads((path / name / "zarr.json").read_text())["attributes"]
            assert attrs["grid_mapping"] == "spatial_ref"  # CF, as stored
            assert (
                "crs_wkt"
                in json.loads((path / "spatial_ref" / "zarr.json").read_text())["attributes"]
            )
            assert ds[name].rio.crs == src.crs
            assert ds[name].rio.transform() == src.transform
            assert ds[name].rio.shape == src.shape
    assert ds.attrs["geoxr:complete"] is True
    assert ds.attrs["proj:shape"] == [443, 489]
    # GeoZarr's proj:wkt2 is WKT2 (it held WKT1 text, PROJCS[...]).
    wkt2 = ds.attrs["proj:wkt2"]
    assert wkt2.startswith(("PROJCRS[", "BOUNDCRS[")) and CRS.from_wkt(wkt2) == src.crs
    assert "geoxr_blocks_done" not in ds  # bookkeeping removed once complete
    back = read_zarr_labels(path)
    np.testing.assert_array_equal(back.scores.values, nc_labels.scores.values)
    np.testing.assert_array_equal(back.class_ids.values, nc_labels.class_ids.values)
    assert back.class_config == nc_labels.class_config


def test_zarr_written_from_a_local_cluster_equals_the_threaded_write(tmp_path, nc_labels):
    # Block tasks write their chunk files on the workers (the chunk writers travel pickled).
    local = write_zarr_labels(nc_labels, tmp_path / "threads.zarr", progress=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        remote = write_zarr_labels(nc_labels, tmp_path / "cluster.zarr", progress=False)
    a, b = read_zarr_labels(local), read_zarr_labels(remote)
    assert (b.grid.crs, b.grid.transform, b.grid.shape) == (
        a.grid.crs,
        a.grid.transform,
        a.grid.shape,
    )
    # Workers run torch with one thread: scores may differ in the last bits.
    np.testing.assert_allclose(b.scores.values, a.scores.values, atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(b.class_ids.values, a.class_ids.values)
    for name in ("scores", "class_id"):
        files = [p for p in (remote / name / "c").rglob("*") if p.is_file()]
        assert len(files) == 4 * 4  # one chunk per block, no temporary file left


def test_incomplete_store_is_refused(tmp_path, nc_labels):
    path = write_zarr_labels(nc_labels, tmp_path / "p.zarr", progress=False)
    group = zarr.open_group(str(path), mode="r+")
    del group.attrs["geoxr:complete"]
    with pytest.raises(geoxr.IncompleteOutputError, match="incomplete"):
        read_zarr_labels(path)
    with pytest.raises(geoxr.IncompleteOutputError, match="No Zarr label store"):
        read_zarr_labels(tmp_path / "missing.zarr")


def test_store_of_another_job_is_not_resumed(tmp_path, nc_labels, nc_bundle, nc_stack):
    path = write_zarr_labels(nc_labels, tmp_path / "p.zarr", progress=False)
    other = geoxr.predict_scene(nc_bundle, geoxr.RasterioSource(nc_stack), chip_size=64, stride=64)
    with pytest.raises(geoxr.IncompleteOutputError, match="another prediction job"):
        write_zarr_labels(other, path, progress=False)
    write_zarr_labels(other, path, progress=False, resume=False)
    np.testing.assert_array_equal(read_zarr_labels(path).class_ids.values, other.class_ids.values)


def test_a_script_predicting_from_open_rasterio_runs_again_as_the_same_job(
    tmp_path, nc_bundle, nc_stack
):
    # Each XarraySource over a lazily indexed array was a job of its own: the script run
    # again raised "another prediction job" on its finished store (and resumed nothing).
    def labels_of(path):
        source = geoxr.XarraySource(rioxarray.open_rasterio(path))
        return geoxr.predict_scene(nc_bundle, source, chip_size=64, stride=64, block_size=128)

    path = write_zarr_labels(labels_of(nc_stack), tmp_path / "p.zarr", progress=False)
    written = sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*"))
    assert write_zarr_labels(labels_of(nc_stack), path, progress=False) == path
    assert sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*")) == written  # untouched
    # The file rewritten since (other pixels) is another job.
    copy = tmp_path / "stack.tif"
    with rasterio.open(nc_stack) as src:
        profile, values = src.profile, src.read()
    with rasterio.open(copy, "w", **profile) as dst:
        dst.write(values)
    first = write_zarr_labels(labels_of(copy), tmp_path / "q.zarr", progress=False)
    with rasterio.open(copy, "r+") as dst:
        dst.write(values[:, ::-1])
    with pytest.raises(geoxr.IncompleteOutputError, match="another prediction job"):
        write_zarr_labels(labels_of(copy), first, progress=False)


def test_a_bundle_saved_again_unchanged_is_the_same_job(tmp_path, nc_bundle, nc_stack):
    # The README's example run twice: training resumes with nothing to do and saves the
    # bundle again. A new file (its identity was the job's) raised "another prediction
    # job" on the finished store.
    learner = geoxr.SemanticSegmentationLearner.from_model_bundle(nc_bundle, output_dir=tmp_path)
    bundle = learner.save_model_bundle(tmp_path / "model-bundle.zip")

    def labels():
        source = geoxr.RasterioSource(nc_stack)
        return geoxr.predict_scene(bundle, source, chip_size=64, stride=64, block_size=128)

    path = write_zarr_labels(labels(), tmp_path / "p.zarr", progress=False)
    written = sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*"))
    before = bundle.read_bytes()
    bundle.unlink()
    learner.save_model_bundle(bundle)
    assert bundle.read_bytes() == before  # no timestamps in the bundle
    assert write_zarr_labels(labels(), path, progress=False) == path
    assert sorted((p, p.stat().st_mtime_ns) for p in path.rglob("*")) == written  # untouched
    with torch.no_grad():
        next(learner.model.parameters()).add_(1.0)  # other weights: another model
    learner.save_model_bundle(bundle)
    with pytest.raises(geoxr.IncompleteOutputError, match="another prediction job"):
        write_zarr_labels(labels(), path, progress=False)


def test_the_same_arrays_with_another_class_config_are_another_job(
    tmp_path, nc_labels, nc_class_config
):
    path = write_zarr_labels(nc_labels, tmp_path / "p.zarr", progress=False)
    renamed = geoxr.ClassConfig(
        [f"{name}-2" if name != "null" else name for name in nc_class_config.names],
        null_class="null",
    )
    relabelled = geoxr.SemanticSegmentationLabels(
        grid=nc_labels.grid,
        class_config=renamed,
        scores=nc_labels.scores,
        class_ids=nc_labels.class_ids,
    )
    with pytest.raises(geoxr.IncompleteOutputError, match="another prediction job"):
        write_zarr_labels(relabelled, path, progress=False)


def test_only_a_geoxr_store_is_replaced(tmp_path, nc_labels):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a store")
    a_file = tmp_path / "file.zarr"
    a_file.write_text("not a store")
    for path, kind in ((other, "a directory of other files"), (a_file, "a file")):
        for resume in (True, False):
            with pytest.raises(geoxr.OutputPathError, match=f"not a geoxr label store \\({kind}"):
                write_zarr_labels(nc_labels, path, progress=False, resume=resume)
    assert (other / "notes.txt").read_text() == "not a store" and a_file.is_file()
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    write_zarr_labels(nc_labels, empty, progress=False)
    np.testing.assert_array_equal(
        read_zarr_labels(empty).class_ids.values, nc_labels.class_ids.values
    )


RUN = textwrap.dedent(
    """
    import os, sys
    import geoxr
    from geoxr.store import write_zarr_labels

    bundle, image, out, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    labels = geoxr.predict_scene(bundle, geoxr.RasterioSource(image), chip_size=64, stride=32, block_size=128)
    written = []

    def on_block(block):
        written.append(block)
        if kill_after and len(written) >= kill_after:
            os._exit(9)  # a crash between blocks: no clean-up runs

    write_zarr_labels(labels, out, progress=False, on_block=on_block)
    print(len(written))
    """
)


def test_killed_run_resumes_without_recomputing_finished_blocks(
    tmp_path, nc_bundle, nc_stack, nc_labels
):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    out = tmp_path / "resume.zarr"
    args = [sys.executable, str(script), str(nc_bundle), str(nc_stack), str(out)]
    killed = subprocess.run([*args, "5"], capture_output=True, text=True, env=os.environ)
    assert killed.returncode == 9, killed.stderr
    # The store is written beside its path and takes its place when complete.
    work = tmp_path / ".resume.zarr.partial"
    assert not out.exists()
    group = zarr.open_group(str(work), mode="r")
    assert "geoxr:complete" not in group.attrs
    done = int(np.asarray(zarr.open_array(str(work / "geoxr_blocks_done"))[...]).sum())
    assert done >= 5
    with pytest.raises(geoxr.IncompleteOutputError, match=r"'\.resume\.zarr\.partial' beside"):
        read_zarr_labels(out)  # said only "No Zarr label store"
    # What a process killed while writing a chunk leaves: its temporary file.
    leftover = work / "scores" / "c" / "0" / "3" / f"3.{'0' * 32}.partial"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a chunk")
    resumed = subprocess.run([*args, "0"], capture_output=True, text=True, env=os.environ)
    assert resumed.returncode == 0, resumed.stderr
    assert not work.exists() and not list(out.rglob("*.partial"))
    total = 4 * 4  # 443 x 489 in 128-pixel blocks
    assert int(resumed.stdout.strip().splitlines()[-1]) == total - done
    back = read_zarr_labels(out)
    # Another process may batch chips differently: float noise of ~1e-7, no more.
    expected = nc_labels.scores.values
    np.testing.assert_allclose(back.scores.values, expected, atol=1e-5, equal_nan=True)
    top2 = np.sort(np.nan_to_num(expected, nan=0.0), axis=0)[-2:]
    decided = top2[1] - top2[0] > 1e-4
    np.testing.assert_array_equal(
        back.class_ids.values[decided], nc_labels.class_ids.values[decided]
    )


def test_blocks_without_any_prediction_are_written_too(tmp_path, nc_labels):
    # The top-left 128 x 128 block has no score at all (as where the input is nodata):
    # all NaN, the null class everywhere, the same as the arrays' fill values. Every
    # block is predicted, so its chunks are written as they are, never skipped by a
    # comparison with the fill value (a pass over each chunk).
    rows, cols = np.indices(nc_labels.grid.shape)
    predicted = xr.DataArray((rows >= 128) | (cols >= 128), dims=("y", "x"))
    labels = geoxr.SemanticSegmentationLabels(
        grid=nc_labels.grid,
        class_config=nc_labels.class_config,
        scores=nc_labels.scores.where(predicted),
    )
    path = write_zarr_labels(labels, tmp_path / "holes.zarr", progress=False)
    for name in ("scores", "class_id"):
        fill = json.loads((path / name / "zarr.json").read_text())["fill_value"]
        first_chunk = ("c", *("0",) * (3 if name == "scores" else 2))
        assert (path / name).joinpath(*first_chunk).is_file(), (name, fill)
    back = read_zarr_labels(path)
    assert np.isnan(back.scores.values[:, :128, :128]).all()
    assert (back.class_ids.values[:128, :128] == nc_labels.null_class_id).all()
    np.testing.assert_array_equal(back.class_ids.values, labels.class_ids.values)


class _Stop(Exception):
    pass


def _stop_after(blocks):
    written = []

    def on_block(block):
        written.append(block)
        if len(written) >= blocks:
            raise _Stop

    return on_block, written


def test_a_store_is_replaced_only_when_its_replacement_is_complete(tmp_path, nc_labels):
    # The old store was deleted first: labels read from it lazily were read back as
    # fill values and written as a "complete" store of NaN; an interrupted replacement
    # left a store that read as complete with arrays missing.
    path = write_zarr_labels(nc_labels, tmp_path / "p.zarr", progress=False)
    old = read_zarr_labels(path)
    on_block, _ = _stop_after(3)
    other = nc_labels.filter_by_aoi(
        shapely.box(*nc_labels.grid.window_bounds(Window(0, 0, 200, 300)))
    )
    with pytest.raises(_Stop):
        write_zarr_labels(other, path, progress=False, resume=False, on_block=on_block)
    np.testing.assert_array_equal(
        read_zarr_labels(path).class_ids.values, nc_labels.class_ids.values
    )
    # From its own lazily read labels: it reads the old store while writing the new one.
    filtered = old.filter_by_aoi(
        shapely.box(*nc_labels.grid.window_bounds(Window(0, 0, 200, 300)))
    )
    expected = filtered.scores.values
    write_zarr_labels(filtered, path, progress=False, resume=False)
    back = read_zarr_labels(path)
    np.testing.assert_array_equal(back.scores.values, expected)
    assert 0.2 < np.isnan(back.scores.values[0]).mean() < 0.9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]  # nothing left beside it


def test_a_killed_store_resumes_whatever_its_paths_spelling(tmp_path, nc_labels, monkeypatch):
    # The path was part of the job's token: the same store given as an absolute path
    # was "the output of another prediction job".
    monkeypatch.chdir(tmp_path)
    on_block, _ = _stop_after(4)
    with pytest.raises(_Stop):
        write_zarr_labels(nc_labels, "p.zarr", progress=False, on_block=on_block)
    done = int(np.asarray(zarr.open_array(".p.zarr.partial/geoxr_blocks_done")[...]).sum())
    rest = []
    write_zarr_labels(
        nc_labels, tmp_path / "sub" / ".." / "p.zarr", progress=False, on_block=rest.append
    )
    # Blocks still running when the run stopped may finish (and be marked) after `done`.
    assert done >= 4 and len(rest) <= 4 * 4 - done
    np.testing.assert_array_equal(
        read_zarr_labels("p.zarr").class_ids.values, nc_labels.class_ids.values
    )


def test_a_killed_replacement_resumes_and_a_link_to_a_store_is_followed(
    tmp_path, nc_labels, nc_bundle, nc_stack
):
    # A replacement (resume=False) killed midway could never resume: the complete
    # store of the other job at the path was refused first. A symbolic link to a store
    # was renamed away, and removing it raised after all the work was done.
    path = write_zarr_labels(nc_labels, tmp_path / "p.zarr", progress=False)
    other = geoxr.predict_scene(
        nc_bundle, geoxr.RasterioSource(nc_stack), chip_size=64, stride=64, block_size=128
    )
    on_block, _ = _stop_after(5)
    with pytest.raises(_Stop):
        write_zarr_labels(other, path, progress=False, resume=False, on_block=on_block)
    work = tmp_path / ".p.zarr.partial"
    done = int(np.asarray(zarr.open_array(str(work / "geoxr_blocks_done"))[...]).sum())
    rest = []
    write_zarr_labels(other, path, progress=False, on_block=rest.append)
    # Blocks still running when the run stopped may finish (and be marked) after `done`.
    assert done >= 5 and len(rest) <= 4 * 4 - done
    np.testing.assert_array_equal(read_zarr_labels(path).class_ids.values, other.class_ids.values)
    link = tmp_path / "link.zarr"
    link.symlink_to(path)
    write_zarr_labels(nc_labels, link, progress=False, resume=False)
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == [
        "link.zarr",
        "p.zarr",
    ]
    np.testing.assert_array_equal(
        read_zarr_labels(link).class_ids.values, nc_labels.class_ids.values
    )


def test_the_progress_bar_names_the_store(tmp_path, nc_labels, capsys):
    # Cut from the work directory's name, it was garbled for a store written in place.
    empty = tmp_path / "in-place.zarr"
    empty.mkdir()
    write_zarr_labels(nc_labels, empty, progress=True)
    write_zarr_labels(nc_labels, tmp_path / "beside.zarr", progress=True)
    err = capsys.readouterr().err
    assert "writing 16 blocks to in-place.zarr" in err and "16 blocks to beside.zarr" in err


def _constant_ids(grid, value, *, bad_block=None, seconds=None):
    """Class ids ``value`` in 100 px blocks; ``bad_block`` holds id 9 (refused when
    written); block ``(i, j)`` takes ``seconds[(i, j)]`` to compute."""
    seconds = seconds or {}

    def block_ids(block_info=None):
        where = tuple(block_info[None]["chunk-location"])
        time.sleep(seconds.get(where, 0))
        return np.full((100, 100), 9 if where == bad_block else value, np.uint8)

    ids = da.map_blocks(
        block_ids, chunks=((100, 100), (100, 100)), dtype=np.uint8, meta=np.array((), np.uint8)
    )
    return geoxr.SemanticSegmentationLabels(
        grid=grid,
        class_config=geoxr.ClassConfig(["a", "b"]),
        class_ids=grid.wrap(ids, dims=("y", "x")),
    )


def test_another_jobs_unfinished_store_beside_the_path_is_not_taken_for_this_one(
    tmp_path, nc_stack
):
    # Its blocks were resumed as this job's, or, finished, it was put in place as this
    # job's output: a store marked complete holding another prediction.
    grid = geoxr.RasterioSource(nc_stack, bbox=(0, 0, 200, 200)).grid
    path = tmp_path / "p.zarr"
    on_block, _ = _stop_after(2)
    with pytest.raises(_Stop):
        write_zarr_labels(_constant_ids(grid, 1), path, progress=False, on_block=on_block)
    write_zarr_labels(_constant_ids(grid, 0), path, progress=False)
    assert (read_zarr_labels(path).class_ids.values == 0).all()
    # Finished, but killed before it took its place.
    done = write_zarr_labels(_constant_ids(grid, 1), tmp_path / "a.zarr", progress=False)
    shutil.rmtree(path)
    os.replace(done, tmp_path / ".p.zarr.partial")
    write_zarr_labels(_constant_ids(grid, 0), path, progress=False)
    assert (read_zarr_labels(path).class_ids.values == 0).all()


def test_block_tasks_of_a_failed_write_write_nothing_after_it_raised(tmp_path, nc_stack):
    # dask raised at the first failed block while the others ran on, and wrote into the
    # store of the run started next (or made a '.partial' folder again beside it).
    grid = geoxr.RasterioSource(nc_stack, bbox=(0, 0, 200, 200)).grid
    path = tmp_path / "p.zarr"
    slow = {(0, 0): 1.5, (0, 1): 1.5, (1, 0): 1.5}
    with pytest.raises(geoxr.ClassConfigError):
        write_zarr_labels(
            _constant_ids(grid, 1, bad_block=(1, 1), seconds=slow), path, progress=False
        )
    write_zarr_labels(_constant_ids(grid, 0), path, progress=False, resume=False)
    time.sleep(2)  # whatever the failed run still had running
    assert (read_zarr_labels(path).class_ids.values == 0).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]


def test_a_block_that_finds_another_store_leaves_the_write_unfinished(
    tmp_path, nc_stack, monkeypatch
):
    # A task that found a store other than its own (made anew, or unreadable for a
    # moment) returned as if written: the store was marked complete with a hole.
    grid = geoxr.RasterioSource(nc_stack, bbox=(0, 0, 200, 200)).grid
    real, failed = geoxr.store.zarr._attrs, []

    def unreadable_once_in_a_task(path):
        if threading.current_thread() is not threading.main_thread() and not failed:
            failed.append(path)
            return {}
        return real(path)

    monkeypatch.setattr(geoxr.store.zarr, "_attrs", unreadable_once_in_a_task)
    path = tmp_path / "p.zarr"
    with pytest.raises(
        geoxr.IncompleteOutputError, match=r"was not written\. Run the write again"
    ):
        write_zarr_labels(_constant_ids(grid, 1), path, progress=False)
    assert failed and not path.exists()
    write_zarr_labels(_constant_ids(grid, 1), path, progress=False)  # resumes
    assert (read_zarr_labels(path).class_ids.values == 1).all()
