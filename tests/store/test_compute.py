"""Block tasks from one graph: every block once, any subset on its own."""

from __future__ import annotations

import threading
import time

import dask.array as da
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

import geoxr.label.labels as labels_module
from geoxr import ClassConfig, SemanticSegmentationLabels
from geoxr.grid import Grid, Window
from geoxr.store._compute import compute_blocks, compute_tasks, map_blocks_delayed, stream_blocks


def test_block_tasks_share_upstream_blocks_and_compute_only_the_subset_asked() -> None:
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def scores_block(block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
        with lock:
            calls.append((r0, c0))
        rows, cols = np.mgrid[r0:r1, c0:c1]
        return np.stack([rows, cols, rows + cols]).astype(np.float32)

    scores = da.map_blocks(
        scores_block, chunks=((3,), (4, 4, 2), (5, 5)), dtype=np.float32, meta=np.array(())
    )
    ids = scores.argmax(axis=0)  # a second array made from the same blocks

    def summary(blocks: dict[str, np.ndarray], *, window: Window, block: tuple[int, int]):
        assert blocks["scores"].shape == (3, *window.shape)
        assert blocks["ids"].shape == window.shape
        return block, window, float(blocks["scores"][2].sum()), int(blocks["ids"].max())

    tasks = map_blocks_delayed(summary, {"scores": scores, "ids": ids})
    assert sorted(tasks) == [(i, j) for i in range(3) for j in range(2)]
    assert calls == []  # building the tasks computes nothing

    results = compute_blocks({b: tasks[b] for b in [(0, 1), (2, 0)]}, progress=False, desc="t")
    assert sorted(calls) == [(0, 5), (8, 0)]  # two blocks, each once for both arrays
    block, window, total, top = results[2, 0]
    assert (block, window) == ((2, 0), Window(8, 0, 2, 5))
    rows, cols = np.mgrid[8:10, 0:5]
    assert total == float((rows + cols).sum())
    assert top == 2  # rows + cols is the largest score wherever rows and cols are >= 0


def test_no_block_is_consumed_once_a_failed_stream_has_raised() -> None:
    x = da.zeros((4, 8), chunks=(4, 1))  # 8 blocks on 2 threads
    consumed: list[tuple[int, int]] = []

    def slow_or_failing(blocks: dict[str, np.ndarray], *, window: Window, block: tuple[int, int]):
        if block == (0, 0):
            raise RuntimeError("block (0, 0) failed")
        time.sleep(0.2)
        return block

    with pytest.raises(RuntimeError, match=r"block \(0, 0\) failed"):
        stream_blocks(
            slow_or_failing,
            {"x": x},
            lambda result, window, block: consumed.append(block),
            progress=False,
            desc="t",
        )
    after_raise = list(consumed)
    time.sleep(0.6)  # blocks still running when it raised finish now
    assert consumed == after_raise


def test_blocks_reach_the_function_and_the_class_ids_without_a_copy(monkeypatch) -> None:
    """Multi-band blocks are handed over as computed, not concatenated into a copy first."""
    computed: dict[tuple[int, int], np.ndarray] = {}

    def scores_block(block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
        block = np.random.default_rng(r0 * 100 + c0).random((3, r1 - r0, c1 - c0), np.float32)
        computed[r0, c0] = block
        return block

    scores = da.map_blocks(
        scores_block, chunks=((3,), (4, 4), (5, 5)), dtype=np.float32, meta=np.array(())
    )
    grid = Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 8), (8, 10))
    labels = SemanticSegmentationLabels(
        grid=grid,
        class_config=ClassConfig(["a", "b"]),
        scores=grid.wrap(scores, dims=("class", "y", "x"), name="scores"),
    )
    seen_by_class_ids: list[bool] = []
    original = labels_module.class_ids_from_scores

    def class_ids_in_place(block: np.ndarray, null_class_id: int) -> np.ndarray:
        # A copy of the values: other blocks' tasks add to the dict meanwhile (threads).
        blocks = tuple(computed.values())
        seen_by_class_ids.append(any(np.shares_memory(block, b) for b in blocks))
        return original(block, null_class_id)

    monkeypatch.setattr(labels_module, "class_ids_from_scores", class_ids_in_place)

    def in_place(blocks: dict[str, np.ndarray], *, window: Window, block: tuple[int, int]):
        return np.shares_memory(blocks["scores"], computed[window.row_off, window.col_off])

    tasks = map_blocks_delayed(in_place, {"scores": scores, "ids": labels.class_ids.data})
    results = compute_blocks(tasks, progress=False, desc="t")
    assert results == {block: True for block in tasks}
    assert seen_by_class_ids == [True] * 4


def test_the_progress_bar_counts_the_blocks_asked_for(capsys):
    # tqdm's dask callback counted every task of the graph: "writing 4 blocks", 0/12.
    values = da.arange(64, chunks=16).reshape(4, 16).rechunk((2, 8))
    tasks = map_blocks_delayed(lambda b, **_: int(b["v"].sum()), {"v": values * 2 + 1})
    results = compute_tasks(list(tasks.values()), progress=True, desc="writing 4 blocks")
    assert [r.item() for r in results] == [384, 640, 1408, 1664]
    bar = capsys.readouterr().err.strip().splitlines()[-1]
    assert "writing 4 blocks" in bar and "4/4" in bar
