"""Whole-scene prediction throughput and memory of geoxr against the model alone.

Generates (once, cached in a work directory) 3-band uint8 DEFLATE COGs with
512 x 512 tiles, a CRS and a transform, of each size in ``--sizes`` (edge in
pixels), and a model bundle of a tiny random-initialised convolutional net
(3 -> 8 -> 3 channels, two 3 x 3 convolutions, fixed seed). Then, per size:

* pipeline: in a fresh subprocess,
  ``geoxr.predict_scene(bundle, geoxr.RasterioSource(cog), chip_size=256, stride=256,
  batch_size=16, model_factory=TinyNet)`` written with ``geoxr.SemanticSegmentationLabelStore(out.zarr,
  progress=False).save(labels)`` (``--output cog``: ``out.tif``, class ids and
  scores COGs; ``--output cog-ids``: the class ids COG alone) on dask's default threaded scheduler. Wall time from the
  ``predict_scene`` call to the finished store gives scene Mpx/s. The parent
  samples the RSS of the subprocess and all its descendants every 50 ms (summed)
  and keeps the maximum; ``ru_maxrss`` of the subprocess (``os.wait4``) is a
  cross-check (it is the peak of the largest single process, not a sum).
* model-only: in another fresh subprocess with the same torch thread settings,
  the same weights loaded with ``SemanticSegmentationLearner.from_model_bundle``
  and ``learner.predict`` on batches of 16 preloaded, in-memory random float32
  ``3 x 256 x 256`` chips: as many chips as the pipeline runs on that scene, or at
  most ``--model-chips`` of them, the time then extrapolated to all the scene's
  chips (the table marks it). Scene Mpx / that time is the model-only rate, so
  the ratio pipeline / model-only is model time / pipeline time.

Both subprocesses also report their CPU time (all threads) over the timed part;
"CPU ratio" (model-only CPU s / pipeline CPU s) hardly moves when other work
shares the machine, while wall-clock ratios do: use ``--rounds`` there.

Targets: pipeline >= 0.8 x model-only; peak RSS of the largest scene within
1.25 x that of 4000 x 4000 and under 2 GiB.

Allocator: by default both subprocesses run with glibc's malloc as the environment
sets it; ``--malloc torch-cpu`` gives both ``geoxr.TORCH_CPU_MALLOC_ENV``, under
which torch's large activations are no longer mapped and unmapped on every pass
(see ``geoxr/learn/cpu_malloc.py``): model-only got 2.6-2.8 times faster here.

Memory: GDAL's block cache (``GDAL_CACHEMAX``, by default 5% of RAM) keeps
decoded input tiles, so peak RSS grows with the scene up to that size;
``--gdal-cachemax 64`` runs the subprocesses with a 64 MB cache to show it.

Sizes and disk: each input COG takes about 0.8 x 3 x size**2 bytes (the noise
keeps DEFLATE from doing better), plus as much again for a temporary tiled
GeoTIFF while it is converted (about a minute for 20000 x 20000 on two cores).
The Zarr output holds float32 scores (3 classes) and uint8 class ids, 13 bytes a
pixel, about 10 after compression (3.9 GB for 20000 x 20000); it is deleted after
each run unless ``--keep-outputs``. So ``--sizes 50000`` (2500 Mpx: ~7.5 GB of
uncompressed input pixels, ~6 GB as a COG, ~6 GB more while generating, ~25 GB of
Zarr output) needs about 40 GB free, ~6 minutes to generate and, at 3-6 Mpx/s on
two cores, 7-15 minutes per pipeline run (raise ``--timeout`` beyond that); the
script checks free disk space first.

Run ``python benchmarks/predict.py --help``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import psutil
import rasterio
import rasterio.shutil
import rasterio.windows
import torch
from _rasters import is_cached_raster
from affine import Affine
from torch import nn

import geoxr

HERE = Path(__file__).resolve().parent
TILE = 512
CHIP = 256
STRIDE = 256
BATCH = 16
CRS = "EPSG:32616"
# 0.5 m pixels in UTM zone 16N (around Atlanta).
TRANSFORM = Affine(0.5, 0.0, 733600.0, 0.0, -0.5, 3730000.0)
SEED = 0
CLASSES = ("a", "b")
BUNDLE_NAME = "tiny-model-bundle.zip"
RESULT_PREFIX = "RESULT "
MIB = 2**20
GIB = 2**30
RATIO_TARGET = 0.8
RSS_GROWTH_TARGET = 1.25
RSS_LIMIT_BYTES = 2 * GIB


# --------------------------------------------------------------------------------------
# The model


class TinyNet(nn.Module):
    """3 -> 8 -> 3 channels: ``Conv2d(3, 8, 3) -> ReLU -> Conv2d(8, 3, 3)``, same padding."""

    def __init__(self, in_channels: int = 3, hidden: int = 8, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, classes, H, W)``."""
        return self.body(x)


def make_learner(output_dir: Path, *, seed: int = SEED) -> geoxr.SemanticSegmentationLearner:
    """A learner around :class:`TinyNet` (random weights from ``seed``), 2 classes + null.

    Normalisation stats for 8-bit imagery travel with the bundle, so the pipeline
    runs its normalisation step as it would for a real model.
    """
    class_config = geoxr.ClassConfig(list(CLASSES))
    num_classes = len(class_config.ensure_null_class())
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=class_config,
        in_channels=3,
        norm_stats=geoxr.BandStats(means=(128.0,) * 3, stds=(64.0,) * 3),
    )
    torch.manual_seed(seed)
    model = TinyNet(3, 8, num_classes)
    return geoxr.SemanticSegmentationLearner(
        cfg, model=model, output_dir=output_dir, seed=seed, resume=False, progress=False
    )


def ensure_bundle(workdir: Path, *, seed: int = SEED) -> Path:
    """Write the tiny model's bundle once (``workdir/tiny-model-bundle.zip``), or reuse it."""
    bundle = workdir / BUNDLE_NAME
    if bundle.is_file():
        return bundle
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # the learner's (unused) output folder
        learner = make_learner(Path(tmp), seed=seed)
        return learner.save_model_bundle(bundle)


def load_learner(bundle: Path) -> geoxr.SemanticSegmentationLearner:
    """The bundle's learner on CPU: a fresh :class:`TinyNet` with the bundle's weights."""
    learner = geoxr.SemanticSegmentationLearner.from_model_bundle(
        bundle, model=TinyNet(), output_dir=bundle.parent, device="cpu"
    )
    learner.progress = False
    return learner


# --------------------------------------------------------------------------------------
# Data


def _bands(rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(3, h, w)`` uint8: low-frequency patterns (separable, cheap) plus pixel noise."""
    y = rows.astype(np.float32)[:, None]
    x = cols.astype(np.float32)[None, :]
    low = [
        np.sin(y / 1700.0) * np.cos(x / 2300.0),
        np.cos(y / 900.0) * np.sin(x / 1300.0 + 1.0),
        np.sin(y / 3100.0 + 0.5) * np.sin(x / 700.0),
    ]
    mid = np.sin(y / 97.0) * np.cos(x / 61.0)
    out = np.empty((3, rows.size, cols.size), np.uint8)
    for i, field_ in enumerate(low):
        noise = rng.integers(-12, 13, size=(rows.size, cols.size), dtype=np.int16)
        value = 128.0 + 80.0 * field_ + 20.0 * (0.5 + 0.25 * i) * mid + noise
        out[i] = np.clip(value, 0, 255).astype(np.uint8)
    return out


def _gtiff_profile(size: int) -> dict[str, Any]:
    """Tiled uint8 3-band DEFLATE GeoTIFF, the input of the COG conversion."""
    return {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": CRS,
        "transform": TRANSFORM,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "num_threads": "all_cpus",
        "BIGTIFF": "IF_SAFER",
    }


def cog_path(workdir: Path, size: int) -> Path:
    """Where the input COG of a size lives."""
    return workdir / f"scene_{size}.cog.tif"


def ensure_cog(workdir: Path, size: int, *, seed: int = SEED) -> tuple[Path, float | None]:
    """Generate the input COG of ``size`` once, or reuse it; returns (path, seconds or None).

    A tiled GeoTIFF is written one row of tiles at a time (never the whole
    scene in memory), then GDAL's COG driver copies it (no overviews) under a
    temporary name that is renamed when complete.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cog = cog_path(workdir, size)
    if is_cached_raster(cog, size=size, count=3, tile=TILE, crs=CRS, cog=True):
        return cog, None
    print(f"Generating {size} x {size} COG in {workdir} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    rng = np.random.default_rng(seed + size)
    tmp = workdir / f".scene_{size}.tiled.tif"
    tmp_cog = workdir / f".scene_{size}.cog.tif.partial"
    cols = np.arange(size)
    try:
        with rasterio.open(tmp, "w", **_gtiff_profile(size)) as dst:
            for row in range(0, size, TILE):
                height = min(TILE, size - row)
                strip = _bands(np.arange(row, row + height), cols, rng)
                dst.write(strip, window=rasterio.windows.Window(0, row, size, height))
        rasterio.shutil.copy(
            tmp,
            tmp_cog,
            driver="COG",
            compress="DEFLATE",
            blocksize=TILE,
            overviews="NONE",
            num_threads="all_cpus",
            BIGTIFF="IF_SAFER",
        )
        os.replace(tmp_cog, cog)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_cog.unlink(missing_ok=True)
    return cog, time.perf_counter() - start


def check_disk(workdir: Path, sizes: Sequence[int], *, keep_outputs: bool) -> None:
    """Refuse to start when the work directory's disk cannot hold inputs and outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    need = 0.0
    for size in sizes:
        if not is_cached_raster(
            cog_path(workdir, size), size=size, count=3, tile=TILE, crs=CRS, cog=True
        ):
            need += 2 * 0.85 * 3 * size**2  # the COG plus the temporary tiled GeoTIFF
    outputs = [11 * s**2 for s in sizes]
    need += sum(outputs) if keep_outputs else max(outputs, default=0)
    free = shutil.disk_usage(workdir).free
    if need > 0.9 * free:
        raise SystemExit(
            f"Not enough disk in {workdir}: about {need / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free. Use --workdir on a bigger disk or fewer --sizes."
        )


def warm_page_cache(path: Path, chunk: int = 16 << 20) -> float:
    """Read a file once end to end so the timed run finds it in the OS page cache."""
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk):
            pass
    return time.perf_counter() - start


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path`` (or of the file itself)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def scene_chips(size: int) -> int:
    """How many chips the pipeline runs on a ``size`` x ``size`` scene."""
    return len(geoxr.ChipGrid.plan((size, size), CHIP, STRIDE, padding=0))


# --------------------------------------------------------------------------------------
# Child processes (one per measurement, so peak RSS is per size)


def _apply_thread_settings(torch_threads: int | None) -> None:
    """Set torch's intra-op threads when asked (the pipeline and model-only alike)."""
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)


def _torch_threads_in_dask_task() -> int:
    """``torch.get_num_threads()`` as seen from a task of dask's threaded scheduler."""
    import dask

    return int(dask.compute(dask.delayed(torch.get_num_threads, pure=False)())[0])


def child_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """Predict one scene and write it; returns timings (run in a fresh subprocess)."""
    import dask

    _apply_thread_settings(args.torch_threads)
    workdir: Path = args.workdir
    cog = cog_path(workdir, args.size)
    bundle = workdir / BUNDLE_NAME
    warm_page_cache(cog)
    uri = workdir / ("out.zarr" if args.output == "zarr" else "out.tif")
    store = geoxr.SemanticSegmentationLabelStore(
        uri, progress=False, resume=False, write_scores=args.output != "cog-ids"
    )
    remove_paths(uri, store.scores_uri)
    threads_seen = _torch_threads_in_dask_task()

    def predict(source: geoxr.RasterioSource) -> geoxr.SemanticSegmentationLabels:
        return geoxr.predict_scene(
            bundle,
            source,
            chip_size=CHIP,
            stride=STRIDE,
            batch_size=BATCH,
            block_size=args.block_size,
            model_factory=TinyNet,
        )

    # Warm-up, as model-only has one: the bundle is loaded into this process's model
    # cache and the model, reader and store make their first calls on a corner of the
    # scene (two chips), written to a scratch store.
    warm_uri = workdir / ("warm-up.zarr" if args.output == "zarr" else "warm-up.tif")
    warm_store = geoxr.SemanticSegmentationLabelStore(
        warm_uri, progress=False, resume=False, write_scores=args.output != "cog-ids"
    )
    warm_store.save(predict(geoxr.RasterioSource(cog, bbox=(0, 0, CHIP, 2 * CHIP))))
    remove_paths(warm_uri, warm_store.scores_uri)
    gc.collect()  # the collection imports made due now, not inside the timed part
    start, cpu_start = time.perf_counter(), time.process_time()
    labels = predict(geoxr.RasterioSource(cog))
    store.save(labels)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    out_bytes = dir_bytes(uri) + (
        dir_bytes(store.scores_uri) if store.scores_uri and store.scores_uri.exists() else 0
    )
    scores = labels.scores
    assert scores is not None
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "blocks": int(np.prod(scores.data.numblocks)),
        "output_bytes": out_bytes,
        "torch_threads_main": torch.get_num_threads(),
        "torch_threads_in_dask_task": threads_seen,
        "dask_scheduler": str(dask.config.get("scheduler", "threads (default)")),
        "dask_threads": os.cpu_count(),
        "ru_maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def child_model(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``learner.predict`` alone on preloaded chips; returns timings (fresh subprocess)."""
    _apply_thread_settings(args.torch_threads)
    learner = load_learner(args.workdir / BUNDLE_NAME)
    chips = scene_chips(args.size)
    timed = min(chips, args.model_chips)
    timed_batches = max(1, -(-timed // BATCH))
    timed = min(chips, timed_batches * BATCH)
    rng = np.random.default_rng(SEED)
    # A pool of distinct chips (normalised-looking values), cycled through batch by batch.
    pool_batches = min(timed_batches, 8)
    pool = rng.standard_normal((pool_batches, BATCH, 3, CHIP, CHIP), dtype=np.float32)
    batches = [torch.from_numpy(pool[i]) for i in range(pool_batches)]
    for x in batches[:2]:  # warm-up: oneDNN primitive creation, allocator
        learner.predict(x)
    gc.collect()
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(timed_batches):
        x = batches[i % pool_batches][: min(BATCH, timed - done)]
        out = learner.predict(x)
        done += x.shape[0]
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    assert out.shape[1] == 3 and done == timed
    return {
        "timed_chips": timed,
        "scene_chips": chips,
        "seconds_timed": seconds,
        "seconds_scene": seconds * chips / timed,
        "cpu_s_scene": cpu * chips / timed,
        "extrapolated": timed < chips,
        "torch_threads_main": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------
# Running children, measuring their memory


class TreeRssSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until stopped or the process is gone."""
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()


@dataclass
class ChildRun:
    """One subprocess: its result, peak RSS of its tree, ``ru_maxrss`` and wall time."""

    result: dict[str, Any]
    peak_rss_tree: int
    ru_maxrss: int
    wall_s: float
    samples: int


def run_child(mode: str, args: argparse.Namespace, size: int, output: str = "zarr") -> ChildRun:
    """Run this script as ``--child mode`` for one size; sample its memory meanwhile."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--sizes",
        str(size),
        "--workdir",
        str(args.workdir),
        "--model-chips",
        str(args.model_chips),
        "--output",
        output,
    ]
    if args.torch_threads is not None:
        cmd += ["--torch-threads", str(args.torch_threads)]
    if args.block_size is not None:
        cmd += ["--block-size", str(args.block_size)]
    env = dict(os.environ)
    if args.gdal_cachemax is not None:
        env["GDAL_CACHEMAX"] = args.gdal_cachemax
    if args.malloc == "torch-cpu":
        env.update(geoxr.TORCH_CPU_MALLOC_ENV)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    sampler = TreeRssSampler(proc.pid)
    sampler.start()
    timer = threading.Timer(args.timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        # wait4 reaps the child and gives its own rusage (ru_maxrss in KiB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        sampler.stop()
    wall = time.perf_counter() - start
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{mode} run for {size} px failed (exit {proc.returncode}); its output:\n{stdout}"
        )
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return ChildRun(result, sampler.peak, usage.ru_maxrss * 1024, wall, sampler.samples)


# --------------------------------------------------------------------------------------
# Report


@dataclass
class SizeResult:
    """The figures of one scene size and output format, over ``--rounds`` rounds."""

    size: int
    output: str
    chips: int
    model_extrapolated: bool
    model_timed_chips: int
    blocks: int
    output_bytes: int
    pipeline_runs_s: list[float] = field(default_factory=list)
    model_runs_s: list[float] = field(default_factory=list)
    pipeline_cpu_runs_s: list[float] = field(default_factory=list)
    model_cpu_runs_s: list[float] = field(default_factory=list)
    peak_rss_tree_runs: list[int] = field(default_factory=list)
    ru_maxrss_runs: list[int] = field(default_factory=list)
    child_wall_runs_s: list[float] = field(default_factory=list)
    loadavg_before: list[float] = field(default_factory=list)
    torch_threads: dict[str, int] = field(default_factory=dict)

    @property
    def mpx(self) -> float:
        """Scene size in megapixels."""
        return self.size**2 / 1e6

    @property
    def pipeline_s(self) -> float:
        """Median seconds of predict_scene + store over the rounds."""
        return median(self.pipeline_runs_s)

    @property
    def model_s(self) -> float:
        """Median seconds of the model alone on all the scene's chips (maybe extrapolated)."""
        return median(self.model_runs_s)

    @property
    def peak_rss_tree(self) -> int:
        """Largest peak RSS of the pipeline's process tree over the rounds."""
        return max(self.peak_rss_tree_runs)

    @property
    def ru_maxrss(self) -> int:
        """Largest ``ru_maxrss`` of the pipeline subprocess over the rounds."""
        return max(self.ru_maxrss_runs)

    @property
    def pipeline_rate(self) -> float:
        """Scene Mpx/s of predict_scene + store."""
        return self.mpx / self.pipeline_s

    @property
    def model_rate(self) -> float:
        """Scene Mpx/s of the model alone on the scene's chips."""
        return self.mpx / self.model_s

    @property
    def ratio(self) -> float:
        """Pipeline rate / model-only rate (of the medians)."""
        return self.pipeline_rate / self.model_rate

    @property
    def cpu_ratio(self) -> float:
        """Model-only CPU seconds / pipeline CPU seconds (medians): robust to a busy machine."""
        return median(self.model_cpu_runs_s) / median(self.pipeline_cpu_runs_s)

    @property
    def round_ratios(self) -> list[float]:
        """The ratio of each round (its model-only run against its pipeline run)."""
        return [m / p for m, p in zip(self.model_runs_s, self.pipeline_runs_s, strict=True)]


def table(results: Sequence[SizeResult]) -> str:
    """A plain-text table of the figures, one row per size and output."""
    base = {r.output: r.peak_rss_tree for r in results if r.size == 4000}
    lines = [
        "times: medians over the rounds; memory: the largest peak of the rounds",
        f"{'size':>7} {'out':>4} {'chips':>6} {'pipe s':>7} {'pipe Mpx/s':>10} "
        f"{'model Mpx/s':>12} {'ratio':>6} {'(rounds)':>11} {'CPU ratio':>9} "
        f"{'peak RSS tree':>14} {'ru_maxrss':>10} {'RSS vs 4000':>11}",
        "-" * 119,
    ]
    for r in results:
        vs = f"{r.peak_rss_tree / base[r.output]:.2f}x" if r.output in base else "-"
        star = "*" if r.model_extrapolated else " "
        ratios = r.round_ratios
        spread = f"({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "-"
        lines.append(
            f"{r.size:>7} {r.output:>4} {r.chips:>6} {r.pipeline_s:>7.1f} "
            f"{r.pipeline_rate:>10.2f} {r.model_rate:>11.2f}{star} {r.ratio:>6.2f} {spread:>11} "
            f"{r.cpu_ratio:>9.2f} "
            f"{r.peak_rss_tree / MIB:>10.0f} MiB {r.ru_maxrss / MIB:>6.0f} MiB {vs:>11}"
        )
    if any(r.model_extrapolated for r in results):
        lines.append(
            "* model-only timed on a subset of the scene's chips (--model-chips) and "
            "extrapolated to all of them"
        )
    return "\n".join(lines)


def verdicts(results: Sequence[SizeResult]) -> list[str]:
    """The targets, checked: ratio >= 0.8; largest RSS <= 1.25 x that of 4000, < 2 GiB."""
    out = []
    for r in results:
        ok = "ok" if r.ratio >= RATIO_TARGET else "MISSED"
        out.append(f"{r.size} {r.output}: ratio {r.ratio:.2f} (target >= {RATIO_TARGET}) {ok}")
    for output in sorted({r.output for r in results}):
        rows = [r for r in results if r.output == output]
        base = next((r for r in rows if r.size == 4000), None)
        big = max(rows, key=lambda r: r.size)
        if base is None or big is base:
            continue
        growth = big.peak_rss_tree / base.peak_rss_tree
        ok = growth <= RSS_GROWTH_TARGET and big.peak_rss_tree < RSS_LIMIT_BYTES
        out.append(
            f"{output}: peak RSS {big.size} = {growth:.2f}x of 4000 "
            f"({big.peak_rss_tree / MIB:.0f} MiB; target <= {RSS_GROWTH_TARGET}x and "
            f"< {RSS_LIMIT_BYTES / MIB:.0f} MiB) {'ok' if ok else 'MISSED'}"
        )
    return out


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Date, machine, library versions and the settings the subprocesses get."""
    import dask
    import zarr

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "geoxr": geoxr.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "dask": dask.__version__,
        "zarr": zarr.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "numpy": np.__version__,
        "GDAL_CACHEMAX": args.gdal_cachemax
        or os.environ.get("GDAL_CACHEMAX", "GDAL default (5% of RAM)"),
        "block_size": args.block_size or "geoxr default",
        "malloc": {
            name: os.environ.get(name)
            if args.malloc == "default"
            else geoxr.TORCH_CPU_MALLOC_ENV.get(name, os.environ.get(name))
            for name in geoxr.TORCH_CPU_MALLOC_ENV
        },
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


# --------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sizes",
        default="4000,10000,20000",
        help="scene edges in pixels, comma-separated (4000,10000,20000); 50000 works too, "
        "see the disk and time note above",
    )
    p.add_argument(
        "--workdir", type=Path, default=HERE / "_work", help="cache of inputs, bundle, outputs"
    )
    p.add_argument(
        "--output",
        choices=("zarr", "cog", "cog-ids", "both"),
        default="zarr",
        help="label store(s) to time: out.zarr, out.tif + out-scores.tif (cog), out.tif "
        "alone (cog-ids: class ids, no scores) or zarr and cog, each in its own "
        "subprocess (zarr)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of (model-only, pipeline) per size; times are medians (1)",
    )
    p.add_argument(
        "--model-chips",
        type=int,
        default=2048,
        help="most chips timed model-only per size; beyond, extrapolated (2048)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        help="torch.set_num_threads in both subprocesses (default: torch's own, one per core)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        help="predict_scene(block_size=...) (default: geoxr's own, about 1024 px)",
    )
    p.add_argument(
        "--gdal-cachemax",
        help="GDAL_CACHEMAX for the subprocesses, e.g. 64 (MB) (default: the environment's, "
        "else GDAL's 5%% of RAM)",
    )
    p.add_argument(
        "--malloc",
        choices=("default", "torch-cpu"),
        default="default",
        help="glibc malloc settings of both subprocesses: the environment's (default) or "
        "geoxr.TORCH_CPU_MALLOC_ENV (torch-cpu)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess (1800)")
    p.add_argument(
        "--keep-outputs", action="store_true", help="keep out.zarr / out.tif after each run"
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    p.add_argument("--child", choices=("pipeline", "model"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes takes integers, comma-separated")
    if not args.sizes or min(args.sizes) < CHIP:
        p.error(f"--sizes must be at least {CHIP} px")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.model_chips < BATCH:
        p.error(f"--model-chips must be at least one batch ({BATCH})")
    args.outputs = ["zarr", "cog"] if args.output == "both" else [args.output]
    args.workdir = args.workdir.resolve()
    return args


def remove_paths(*paths: Path | None) -> None:
    """Delete files and directories that exist (``None``: nothing)."""
    for path in paths:
        if path is not None and path.is_dir():
            shutil.rmtree(path)
        elif path is not None:
            path.unlink(missing_ok=True)


def _remove_outputs(workdir: Path) -> None:
    """Delete the label stores a pipeline run wrote."""
    remove_paths(*(workdir / name for name in ("out.zarr", "out.tif", "out-scores.tif")))


def run_size(args: argparse.Namespace, size: int) -> list[SizeResult]:
    """Generate or reuse the COG of ``size``; run model-only and the pipeline(s) per round.

    Rounds interleave model-only and pipeline runs, so drift of a shared machine
    hits both alike; times are medians over the rounds, memory the maximum.
    """
    cog, gen_s = ensure_cog(args.workdir, size)
    note = f"generated in {gen_s:.0f} s" if gen_s is not None else "cached"
    print(f"{size} x {size}: {cog.name} {cog.stat().st_size / 1e6:.0f} MB ({note})", flush=True)
    results: dict[str, SizeResult] = {}
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        m = run_child("model", args, size).result
        print(
            f"  round {r + 1} model-only: {m['timed_chips']} of {m['scene_chips']} chips in "
            f"{m['seconds_timed']:.1f} s (CPU {m['cpu_s_scene'] * m['timed_chips'] / m['scene_chips']:.1f} s; torch threads {m['torch_threads_main']}; "
            f"load average before {load:.1f})",
            flush=True,
        )
        for output in args.outputs:
            load = os.getloadavg()[0]
            run = run_child("pipeline", args, size, output)
            p = run.result
            print(
                f"  round {r + 1} pipeline {output}: {p['seconds']:.1f} s (CPU {p['cpu_s']:.1f} s), "
                f"{p['blocks']} blocks, "
                f"output {p['output_bytes'] / 1e6:.0f} MB, peak RSS tree "
                f"{run.peak_rss_tree / MIB:.0f} MiB ({run.samples} samples), ru_maxrss "
                f"{run.ru_maxrss / MIB:.0f} MiB, torch threads main {p['torch_threads_main']} / "
                f"in dask tasks {p['torch_threads_in_dask_task']} x {p['dask_threads']} dask "
                f"threads (load average before {load:.1f})",
                flush=True,
            )
            res = results.setdefault(
                output,
                SizeResult(
                    size=size,
                    output=output,
                    chips=m["scene_chips"],
                    model_extrapolated=m["extrapolated"],
                    model_timed_chips=m["timed_chips"],
                    blocks=p["blocks"],
                    output_bytes=p["output_bytes"],
                    torch_threads={
                        "model_only": m["torch_threads_main"],
                        "pipeline_main": p["torch_threads_main"],
                        "pipeline_dask_task": p["torch_threads_in_dask_task"],
                    },
                ),
            )
            res.model_runs_s.append(m["seconds_scene"])
            res.pipeline_runs_s.append(p["seconds"])
            res.model_cpu_runs_s.append(m["cpu_s_scene"])
            res.pipeline_cpu_runs_s.append(p["cpu_s"])
            res.peak_rss_tree_runs.append(run.peak_rss_tree)
            res.ru_maxrss_runs.append(run.ru_maxrss)
            res.child_wall_runs_s.append(run.wall_s)
            res.loadavg_before.append(load)
            if not args.keep_outputs:
                _remove_outputs(args.workdir)
    return list(results.values())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one child measurement, or generate data, run every size and print the table."""
    args = parse_args(argv)
    if args.child is not None:
        args.size = args.sizes[0]
        args.output = args.outputs[0]
        run = child_pipeline if args.child == "pipeline" else child_model
        print(RESULT_PREFIX + json.dumps(run(args)), flush=True)
        return 0
    total_start = time.perf_counter()
    env = environment(args)
    print(
        f"{env['date']}  {env['cpus']} CPUs, python {env['python']}, torch {env['torch']} "
        f"({env['torch_threads']} threads), dask {env['dask']}, zarr {env['zarr']}, "
        f"rasterio {env['rasterio']} (GDAL {env['gdal']}), GDAL_CACHEMAX {env['GDAL_CACHEMAX']}, "
        f"block size {env['block_size']}, malloc {args.malloc} {env['malloc']}"
    )
    if max(args.sizes) >= 50000:
        print(
            "Note: 50000 x 50000 is 2500 Mpx: ~7.5 GB of uncompressed input, ~4 GB as a COG, "
            "~25 GB of Zarr output, and tens of minutes per run on two cores.",
            flush=True,
        )
    check_disk(args.workdir, args.sizes, keep_outputs=args.keep_outputs)
    ensure_bundle(args.workdir)
    results: list[SizeResult] = []
    for size in sorted(args.sizes):
        results.extend(run_size(args, size))
    total = time.perf_counter() - total_start
    print()
    print(table(results))
    print()
    for line in verdicts(results):
        print(line)
    print(
        f"\nTotal runtime {total:.0f} s. Work dir {args.workdir}: {dir_bytes(args.workdir) / 1e6:.0f} MB."
    )
    if args.json is not None:
        payload = {
            "env": env,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": [
                {
                    **asdict(r),
                    "pipeline_s": r.pipeline_s,
                    "model_only_s": r.model_s,
                    "peak_rss_tree_bytes": r.peak_rss_tree,
                    "ru_maxrss_bytes": r.ru_maxrss,
                    "pipeline_mpx_s": r.pipeline_rate,
                    "model_only_mpx_s": r.model_rate,
                    "ratio": r.ratio,
                    "cpu_ratio": r.cpu_ratio,
                }
                for r in results
            ],
            "verdicts": verdicts(results),
            "ru_maxrss_children_max_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            * 1024,
            "total_s": total,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
