"""Zarr v3 label stores: region writes per block, resumable, completeness marker last."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from geoxr.errors import IncompleteOutputError, OutputPathError
from geoxr.grid import Grid, Window, block_chunks
from geoxr.label import ClassConfig, SemanticSegmentationLabels
from geoxr.label.labels import class_ids_to_write
from geoxr.store._compute import compute_blocks, map_blocks_delayed
from geoxr.store._paths import check_output_path
from geoxr.store._zarr_chunks import PARTIAL_SUFFIX, ChunkFiles

__all__ = ["read_zarr_labels", "write_zarr_labels"]

COMPLETE_ATTR = "geoxr:complete"
JOB_ATTR = "geoxr:job"
#: Names the store as ``_create`` made it: block tasks of a run whose store was made
#: anew since (a run that failed, then one with ``resume=False`` or of another job)
#: write nothing into it.
RUN_ATTR = "geoxr:run"
PROGRESS = "geoxr_blocks_done"
BlockCallback = Callable[[tuple[int, int]], None]


def _dataset(labels: SemanticSegmentationLabels, *, scores: bool, output: str) -> xr.Dataset:
    ids = labels.class_ids.copy(data=class_ids_to_write(labels, output))
    variables: dict[str, xr.DataArray] = {
        "class_id": ids.drop_vars("spatial_ref", errors="ignore")
    }
    if scores and labels.scores is not None:
        score_vars = labels.scores.drop_vars("spatial_ref", errors="ignore")
        names = np.asarray(score_vars["class"].values, dtype=object)  # variable-length strings
        variables["scores"] = score_vars.assign_coords({"class": names})
    ds = (
        xr.Dataset(variables)
        .rio.write_crs(labels.grid.crs)
        .rio.write_transform(labels.grid.transform)
    )
    ds.attrs.update(
        {
            "Conventions": "CF-1.8",
            "title": "geoxr semantic segmentation labels",
            "geoxr:class_config": json.dumps(labels.class_config.to_dict()),
            "geoxr:grid_mapping": "spatial_ref",
            # GeoZarr (draft) georeferencing: CF grid mapping plus the affine transform
            "proj:wkt2": labels.grid.crs.to_wkt(version="WKT2_2019"),
            "proj:transform": list(labels.grid.transform)[:6],
            "proj:shape": list(labels.grid.shape),
        }
    )
    return ds


def _job_token(ds: xr.Dataset) -> str:
    """The job a store holds: its arrays' computations and dtypes, grid and class config."""
    return dask.base.tokenize(
        *(v.data.name if hasattr(v.data, "name") else v.data for v in ds.data_vars.values()),
        {name: str(v.dtype) for name, v in ds.data_vars.items()},
        ds.attrs,
    )


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


#: Write calls (``_write_blocks``) given up in this process: their compute raised.
_given_up: set[str] = set()
#: Block tasks of each write call writing in this process now.
_writing: Counter[str] = Counter()
_writers = threading.Condition()


def _write_block(
    arrays: dict[str, np.ndarray],
    *,
    targets: dict[str, ChunkFiles],
    done: ChunkFiles,
    work: Path,
    run: str | None,
    call: str,
    window: Window,
    block: tuple[int, int],
    on_block: BlockCallback | None,
) -> None:
    # dask raises at a write's first failed block while its other tasks run on: none
    # of them may write once the caller has the error (and may write the store anew).
    with _writers:
        if call in _given_up:
            return
        _writing[call] += 1
    try:
        if _attrs(work).get(RUN_ATTR) != run:
            # Its store was made anew since (on a cluster, where the caller cannot wait
            # for this task), taken away, or unreadable: what is there now is not this
            # task's to write, and the write is not finished (a resume completes it).
            raise IncompleteOutputError(
                f"Zarr store {str(work)!r} is not the one this write started on (it was "
                "made anew by another write, removed, or could not be read); block "
                f"{block} was not written. Run the write again: it resumes."
            )
        # A block is one chunk of every array (leading dimensions in one chunk), and the
        # store's chunk indices are the block's.
        for name, values in arrays.items():
            targets[name].write((0,) * (values.ndim - 2) + block, values)
        # Marked after the data is written: a marked block is complete.
        done.write(block, np.ones((1, 1), np.uint8))
    finally:
        with _writers:
            _writing[call] -= 1
            if not _writing[call]:
                del _writing[call]
                _writers.notify_all()
    if on_block is not None:
        on_block(block)


def write_zarr_labels(
    labels: SemanticSegmentationLabels,
    path: str | os.PathLike[str],
    *,
    scores: bool = True,
    resume: bool = True,
    progress: bool = True,
    on_block: BlockCallback | None = None,
) -> Path:
    """Write labels to a Zarr v3 store, one region write per dask block.

    The store gets CF ``grid_mapping``/``spatial_ref`` metadata (open it with
    ``xr.open_zarr(path, decode_coords="all")`` and rioxarray sees the CRS and
    transform) and GeoZarr-style ``proj:`` attributes. Each block is computed and
    written by one task, then marked done; the ``geoxr:complete`` attribute is
    written after the last block. A run that was killed resumes: finished blocks
    are neither recomputed nor rewritten.

    The store is written beside ``path``, in ``.<name>.partial``, and renamed to
    ``path`` when complete, so a store already there stays whole until then (labels
    read from it may be written over it). Only into an empty directory is it
    written in place.

    Parameters
    ----------
    labels : SemanticSegmentationLabels
        Usually lazy, from ``predict_scene``.
    path : str or path
        Local directory of the store.
    scores : bool
        Also write the class scores (else class ids only).
    resume : bool
        Continue an unfinished store of the same job; ``False`` starts afresh.
    progress : bool
        Show a progress bar.
    on_block : callable, optional
        Called with ``(row, col)`` block indices after each block is written
        (in the worker that wrote it).

    Raises
    ------
    IncompleteOutputError
        If ``path`` holds a store of another job and ``resume`` is True (unless an
        unfinished run of this job waits beside it: that run was asked to replace it).
    OutputPathError
        If ``path`` is in a file, or holds something other than a geoxr label store
        (a file, a directory of other files).
    """
    # Its work directory goes beside the store itself: "a/../b.zarr", a symbolic link.
    path = Path(path).resolve()
    check_output_path(path, what="Zarr store path", directory=True)
    ds = _dataset(labels, scores=scores, output=str(path))
    ids_chunks = ds["class_id"].chunks or tuple((n,) for n in ds["class_id"].shape)
    # Regular chunks: every dask block is whole Zarr chunks, so no two tasks share a chunk.
    rows, cols = (
        block_chunks(n, max(c)) for n, c in zip(ds["class_id"].shape, ids_chunks, strict=True)
    )
    chunks = (rows, cols)
    token = dask.base.tokenize(_job_token(ds), chunks)
    # A block holds every class: its task writes whole chunks of every array.
    ds = ds.chunk(
        {"y": chunks[0], "x": chunks[1], **({"class": -1} if "class" in ds.dims else {})}
    )
    for var in ds.data_vars.values():
        var.encoding.pop("grid_mapping", None)
        var.attrs["grid_mapping"] = "spatial_ref"  # CF: where the CRS lives
    held, empty = _attrs(path), _is_empty_dir(path)
    if path.exists() and not held and not empty:
        raise OutputPathError(
            f"Zarr store path {str(path)!r} holds something that is not a geoxr label store "
            f"({'a file' if path.is_file() else 'a directory of other files'}); geoxr replaces "
            "only its own stores. Choose another path, or remove it first."
        )
    work = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    for leftover in path.parent.glob(f".{path.name}.replaced-*"):  # of a crash mid-swap
        shutil.rmtree(leftover, ignore_errors=True)
    pending = _attrs(work) if resume else {}
    if pending.get(JOB_ATTR) != token:  # no unfinished run of this job beside the path
        pending = {}  # another job's run, killed before it took its place: not resumed
        if resume and held and held.get(JOB_ATTR) != token:
            raise IncompleteOutputError(
                f"Zarr store {str(path)!r} holds the output of another prediction job. Write "
                "to a new path, or pass resume=False to replace it."
            )
        if resume and held.get(COMPLETE_ATTR):
            return path
        if (resume and held) or empty:
            # This job's store unfinished in place (as earlier geoxr versions wrote it),
            # or nothing to keep whole meanwhile (an empty directory, a mount point maybe):
            # written where it is.
            work = path
            pending = held if resume else {}
    if not pending.get(COMPLETE_ATTR):  # else finished, but killed before it took its place
        if pending and PROGRESS in zarr.open_group(str(work), mode="r"):
            done = np.asarray(zarr.open_array(f"{work}/{PROGRESS}", mode="r")[...]).astype(bool)
            for leftover in work.rglob(f"*{PARTIAL_SUFFIX}"):  # of chunk writes killed midway
                leftover.unlink()
        else:
            _create(ds, work, token, chunks)
            done = np.zeros((len(rows), len(cols)), bool)
        _write_blocks(ds, work, done, name=path.name, progress=progress, on_block=on_block)
    if work != path:
        _take_place(work, path)
    return path


def _attrs(path: Path) -> dict[str, Any]:
    """The root attributes of a Zarr store geoxr wrote at ``path``: its root names a job.

    Empty if ``path`` holds no such store.
    """
    try:
        root = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return {}
    attrs = root.get("attributes") if isinstance(root, dict) else None
    return dict(attrs) if isinstance(attrs, dict) and JOB_ATTR in attrs else {}


def _create(
    ds: xr.Dataset, work: Path, token: str, chunks: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    """A new store at ``work`` with the metadata, coordinates and bookkeeping of ``ds``."""
    if work.exists() and not _is_empty_dir(work):
        shutil.rmtree(work)
    encoding: dict[Hashable, dict[str, Any]] = {
        name: {"chunks": (*var.shape[:-2], chunks[0][0], chunks[1][0])}
        for name, var in ds.data_vars.items()
    }
    if "scores" in encoding:
        # Float scores barely compress. LZ4 on bit-shuffled floats keeps 0.80 of the
        # bytes at no more CPU than writing them raw (16-20 ms per 3 x 1024² block);
        # byte shuffle keeps 0.84 at 1.5-2x the CPU, zstd 0.80 at 2x.
        encoding["scores"]["compressors"] = (
            BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"),
        )
    template = xr.zeros_like(ds)
    template.attrs[JOB_ATTR] = token
    template.attrs[RUN_ATTR] = uuid.uuid4().hex
    # Metadata and coordinates only (data comes block by block): a template of lazy
    # zeros, so xarray does not build a write graph of the whole prediction.
    template.to_zarr(
        work, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding
    )
    root = zarr.open_group(str(work), mode="r+")
    root.create_array(
        PROGRESS,
        shape=(len(chunks[0]), len(chunks[1])),
        chunks=(1, 1),
        dtype="uint8",
        fill_value=0,
    )


def _write_blocks(
    ds: xr.Dataset,
    work: Path,
    done: np.ndarray,
    *,
    name: str,
    progress: bool,
    on_block: BlockCallback | None,
) -> None:
    """Compute and write the blocks not ``done``, then mark the store complete.

    ``name`` is the store's, as the progress bar shows it.
    """
    # Metadata read once here, not in every block task; the chunk writers pickle as
    # paths, chunk shapes and codecs, so distributed workers get them as they are.
    # Every block is predicted, so every chunk is written, even one equal to the fill
    # value (zarr would compare each chunk with it first: a pass over the chunk).
    variables = {str(name): var.data for name, var in ds.data_vars.items()}
    targets = {name: ChunkFiles(zarr.open_array(f"{work}/{name}", mode="r")) for name in variables}
    progress_files = ChunkFiles(zarr.open_array(f"{work}/{PROGRESS}", mode="r"))
    call = uuid.uuid4().hex
    tasks = map_blocks_delayed(
        partial(
            _write_block,
            targets=targets,
            done=progress_files,
            work=work,
            run=_attrs(work).get(RUN_ATTR),
            call=call,
            on_block=on_block,
        ),
        variables,
    )
    todo = {block: task for block, task in tasks.items() if not done[block]}
    try:
        compute_blocks(todo, progress=progress, desc=f"writing {len(todo)} blocks to {name}")
    except BaseException:
        with _writers:  # tasks of this call still writing here finish first; no other starts
            _given_up.add(call)
            _writers.wait_for(lambda: call not in _writing)
        raise
    root = zarr.open_group(str(work), mode="r+")
    root.attrs[COMPLETE_ATTR] = True
    if PROGRESS in root:
        del root[PROGRESS]  # bookkeeping of an unfinished run; the marker above says it all


def _take_place(work: Path, path: Path) -> None:
    """Put the finished store at ``work`` in the place of whatever ``path`` holds.

    The store ``path`` held stays whole until a rename replaces it (labels may be
    read from it while they are written), so a crash leaves either it or the new one.
    """
    if path.exists():
        old = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex}")
        os.replace(path, old)
        os.replace(work, path)
        shutil.rmtree(old)
    else:
        os.replace(work, path)


def read_zarr_labels(path: str | os.PathLike[str]) -> SemanticSegmentationLabels:
    """Open a finished label store lazily as :class:`SemanticSegmentationLabels`.

    Raises
    ------
    IncompleteOutputError
        If the store was never finished (for example a killed run).
    """
    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        work = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
        unfinished = (
            f" A write of it did not finish: '{work.name}' beside it holds what it wrote; "
            "run the same prediction again to resume it."
            if work.exists()
            else ""
        )
        raise IncompleteOutputError(f"No Zarr label store at {str(path)!r}.{unfinished}") from exc
    if not root.attrs.get(COMPLETE_ATTR):
        raise IncompleteOutputError(
            f"Zarr store {str(path)!r} is incomplete (an interrupted write). Run the same "
            "prediction again to resume it."
        )
    ds = xr.open_zarr(
        path,
        decode_coords="all",
        consolidated=False,
        mask_and_scale=False,
        drop_variables=[PROGRESS],
    )
    class_config = ClassConfig.from_dict(json.loads(ds.attrs["geoxr:class_config"]))
    grid = Grid.from_dataarray(ds["class_id"])
    scores = ds["scores"] if "scores" in ds else None
    return SemanticSegmentationLabels(
        grid=grid, class_config=class_config, scores=scores, class_ids=ds["class_id"]
    )
