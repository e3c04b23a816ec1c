"""Chip throughput of geoxr's semantic segmentation datasets against plain rasterio reads.

Generates (once, cached in a work directory) a 3-band uint8 DEFLATE GeoTIFF with
256 x 256 internal tiles and a matching single-band label raster, then times:

* ``SemanticSegmentationSlidingWindowGeoDataset(scene, size=256, stride=256)`` and
  ``SemanticSegmentationRandomWindowGeoDataset(scene, size_lims=(256, 257), ...)``
  through ``torch.utils.data.DataLoader(batch_size=16, num_workers=W)``;
* the limit: the same windows read with rasterio, both files opened once, one
  ``read(window=...)`` of the image and one of the labels per window, in a plain
  single-threaded loop (windows clipped to the raster, ``boundless=False``).

A chip is one image window plus its mask. Run ``python benchmarks/chips.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import numpy as np
import rasterio
import rasterio.env
import rasterio.windows
import torch
from _rasters import is_cached_raster
from affine import Affine
from torch.utils.data import DataLoader, Dataset, Subset

import geoxr
from geoxr.read import shared_tile_cache

TILE = 256
CRS = "EPSG:32616"
# 0.5 m pixels in UTM zone 16N (around Atlanta).
TRANSFORM = Affine(0.5, 0.0, 733600.0, 0.0, -0.5, 3730000.0)
HERE = Path(__file__).resolve().parent


@dataclass
class Data:
    """The benchmark rasters and how they were obtained."""

    image: Path
    labels: Path
    size: int
    generated: bool
    generation_s: float
    image_mb: float
    labels_mb: float


@dataclass
class Timing:
    """One timed pass: ``chips`` windows (image + mask) in ``seconds`` after warm-up.

    ``others`` is the CPU that other processes of the machine used meanwhile, in
    cores (0 on a quiet machine); see :class:`CpuMeter`.
    """

    name: str
    chips: int
    seconds: float
    startup_s: float = 0.0
    others: float = float("nan")
    attempts: int = 1

    @property
    def rate(self) -> float:
        """Chips per second."""
        return self.chips / self.seconds


@dataclass
class ModeResult:
    """The figures of one window plan (sliding or random), over several rounds.

    A figure is the median over the passes run on a quiet machine (other
    processes under ``quiet_threshold`` cores), or over all passes where none was.
    """

    mode: str
    windows: int
    timed_chips: int
    quiet_threshold: float
    baselines: list[Timing] = field(default_factory=list)
    runs: dict[int, list[Timing]] = field(default_factory=dict)

    def kept(self, passes: Sequence[Timing]) -> list[Timing]:
        """The passes a figure comes from: the quiet ones if any, else all."""
        if self.quiet_threshold <= 0:
            return list(passes)
        return [t for t in passes if t.others <= self.quiet_threshold] or list(passes)

    @property
    def limit(self) -> float:
        """The rasterio limit: median chips/s of the kept rasterio passes."""
        return median(t.rate for t in self.kept(self.baselines))

    def rate(self, workers: int) -> float:
        """Median chips/s of the kept geoxr passes with ``workers`` DataLoader workers."""
        return median(t.rate for t in self.kept(self.runs[workers]))


# --------------------------------------------------------------------------------------
# Data


def _fields(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Smooth fields in [-1, 1] on a pixel grid: three image bands and a label field."""
    y, x = rows[:, None].astype(np.float32), cols[None, :].astype(np.float32)
    base = 0.5 * np.sin(x / 900.0 + 0.3 * np.cos(y / 1300.0)) + 0.5 * np.cos(y / 700.0)
    detail = np.sin((x + 2.0 * y) / 97.0) * np.cos((x - y) / 61.0)
    fields = (
        0.75 * base + 0.25 * detail,
        0.60 * base - 0.40 * detail,
        0.85 * np.cos(x / 450.0) * np.sin(y / 520.0) + 0.15 * detail,
    )
    return (*fields, base + 0.2 * detail)


def _strip(row: int, height: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One row of tiles: a ``(3, h, size)`` uint8 image and a ``(1, h, size)`` label strip."""
    rows, cols = np.arange(row, row + height), np.arange(size)
    *bands, label_field = _fields(rows, cols)
    image = np.empty((3, height, size), np.uint8)
    for i, band in enumerate(bands):
        noise = rng.integers(-6, 7, size=band.shape, dtype=np.int16)
        image[i] = np.clip(128.0 + 90.0 * band + noise, 0, 255).astype(np.uint8)
    labels = np.digitize(label_field, [-0.35, 0.3]).astype(np.uint8)[None]
    return image, labels


def _profile(size: int, count: int) -> dict[str, object]:
    """GeoTIFF creation options: uint8, DEFLATE, 256 x 256 tiles."""
    return dict(
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype="uint8",
        crs=CRS,
        transform=TRANSFORM,
        tiled=True,
        blockxsize=TILE,
        blockysize=TILE,
        compress="deflate",
        num_threads="all_cpus",
    )


def ensure_data(workdir: Path, size: int, *, seed: int = 0) -> Data:
    """Generate the image and label rasters once (one row of tiles at a time), or reuse them.

    Files are written under temporary names and renamed when complete, so an
    interrupted run never leaves a half-written cache behind.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / f"chips_image_{size}.tif"
    labels = workdir / f"chips_labels_{size}.tif"
    meta_path = workdir / f"chips_data_{size}.json"
    generated = False
    if is_cached_raster(image, size=size, count=3, tile=TILE, crs=CRS) and is_cached_raster(
        labels, size=size, count=1, tile=TILE, crs=CRS
    ):
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        generation_s = float(meta.get("generation_s", float("nan")))
    else:
        print(f"Generating {size} x {size} rasters in {workdir} ...", flush=True)
        rng = np.random.default_rng(seed)
        tmp_image, tmp_labels = image.with_suffix(".tmp.tif"), labels.with_suffix(".tmp.tif")
        start = time.perf_counter()
        with (
            rasterio.open(tmp_image, "w", **_profile(size, 3)) as img,
            rasterio.open(tmp_labels, "w", **_profile(size, 1)) as lbl,
        ):
            for row in range(0, size, TILE):
                height = min(TILE, size - row)
                strip, label_strip = _strip(row, height, size, rng)
                window = rasterio.windows.Window(0, row, size, height)
                img.write(strip, window=window)
                lbl.write(label_strip, window=window)
        os.replace(tmp_image, image)
        os.replace(tmp_labels, labels)
        generation_s = time.perf_counter() - start
        meta_path.write_text(json.dumps({"generation_s": generation_s, "seed": seed}))
        generated = True
    return Data(
        image=image,
        labels=labels,
        size=size,
        generated=generated,
        generation_s=generation_s,
        image_mb=image.stat().st_size / 1e6,
        labels_mb=labels.stat().st_size / 1e6,
    )


def warm_page_cache(paths: Sequence[Path], chunk: int = 16 << 20) -> float:
    """Read files once end to end so every timed pass finds them in the OS page cache."""
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(chunk):
                pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------
# Timed passes


def clipped_windows(
    windows: Sequence[geoxr.Window], extent: geoxr.Window
) -> list[rasterio.windows.Window | None]:
    """The rasterio windows a minimal reader needs: each window cut to the raster extent."""
    out = []
    for window in windows:
        inner = window.intersection(extent)
        out.append(None if inner is None else inner.to_rasterio())
    return out


class CpuMeter:
    """CPU the rest of the machine uses while a pass runs, to flag a busy machine.

    Busy time of all CPUs comes from ``/proc/stat``; this process's own CPU from
    :func:`time.process_time` and its DataLoader workers' from ``/proc/<pid>/stat``.
    Elsewhere than Linux the figure is NaN.
    """

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    AVAILABLE = Path("/proc/stat").exists()

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        """``(wall, machine busy CPU s, our CPU s)``."""
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            busy = (user + nice + system + irq + softirq + steal) / self.TICK
            ours = time.process_time()
            for pid in self.pids:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ours += (int(stat[11]) + int(stat[12])) / self.TICK
        except (OSError, ValueError, IndexError):
            busy = ours = float("nan")
        return time.perf_counter(), busy, ours

    def others(self) -> float:
        """Cores' worth of CPU used by other processes since construction."""
        wall, busy, ours = self._sample()
        cores = ((busy - self.start[1]) - (ours - self.start[2])) / (wall - self.start[0])
        return max(0.0, cores) if cores == cores else cores  # NaN stays NaN


@dataclass
class Quiet:
    """How far to keep other processes' load out of the figures.

    Before each pass, wait (up to ``wait_s``) until other processes use less
    than ``threshold`` cores; rerun a pass during which they used more, up to
    ``retries`` times, keeping the quietest attempt. ``budget_s`` caps the time
    spent on this over the whole run. ``threshold <= 0`` turns it off.
    """

    threshold: float = 0.25
    wait_s: float = 30.0
    retries: int = 2
    budget_s: float = 120.0
    spent_s: float = 0.0

    @property
    def active(self) -> bool:
        """Whether there is a threshold, a way to measure load, and time left to hold it."""
        return self.threshold > 0 and self.spent_s < self.budget_s and CpuMeter.AVAILABLE

    def wait(self, hold: float = 2.0) -> None:
        """Sleep until other processes stay under the threshold for ``hold`` seconds."""
        quiet_for = 0.0
        waited = 0.0
        while self.active and quiet_for < hold and waited < self.wait_s:
            meter = CpuMeter()
            time.sleep(0.5)
            quiet_for = quiet_for + 0.5 if meter.others() < self.threshold else 0.0
            waited += 0.5
            self.spent_s += 0.5

    def run(self, timed_pass: Callable[[], Timing]) -> Timing:
        """Run a pass on a quiet machine if possible; the quietest of the attempts."""
        best: Timing | None = None
        for attempt in range(1, self.retries + 2):
            self.wait()
            start = time.perf_counter()
            timing = timed_pass()
            timing.attempts = attempt
            if best is None or timing.others < best.others:
                best = timing
            if not self.active or timing.others <= self.threshold or attempt > self.retries:
                break
            self.spent_s += time.perf_counter() - start
            print(
                f"    ({timing.name}: other processes used {timing.others:.2f} cores, "
                "running the pass again)",
                flush=True,
            )
        assert best is not None
        return best


def time_rasterio(data: Data, windows: Sequence[geoxr.Window], *, warmup: int) -> Timing:
    """The limit: plain rasterio reads of image and labels per window, in one thread.

    Both files are opened once. The first ``warmup`` windows are read untimed;
    the rest are timed.
    """
    with rasterio.open(data.image) as img, rasterio.open(data.labels) as lbl:
        extent = geoxr.Window(0, 0, img.height, img.width)
        plan = clipped_windows(windows, extent)
        for rio_window in plan[:warmup]:
            if rio_window is not None:
                img.read(window=rio_window, boundless=False)
                lbl.read(1, window=rio_window, boundless=False)
        meter = CpuMeter()
        start = time.perf_counter()
        for rio_window in plan[warmup:]:
            if rio_window is not None:
                img.read(window=rio_window, boundless=False)
                lbl.read(1, window=rio_window, boundless=False)
        seconds = time.perf_counter() - start
        others = meter.others()
    return Timing("rasterio", len(plan) - warmup, seconds, others=others)


def time_loader(dataset: Dataset, *, workers: int, batch_size: int) -> Timing:
    """geoxr through a DataLoader: the first batch is warm-up, the rest are timed.

    ``startup_s`` is the time to the first batch (worker start-up included).
    """
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    start = time.perf_counter()
    batches = iter(loader)
    image, _ = next(batches)
    first = time.perf_counter()
    meter = CpuMeter([w.pid for w in getattr(batches, "_workers", [])])
    chips = 0
    # Stop at the last batch: exhausting the iterator would stop the workers first.
    for _ in range(len(loader) - 1):
        image, mask = next(batches)
        assert image.dtype == torch.float32 and mask.dtype == torch.int64
        chips += image.shape[0]
    seconds = time.perf_counter() - first
    others = meter.others()
    del batches
    return Timing(f"geoxr W={workers}", chips, seconds, startup_s=first - start, others=others)


def check_same_pixels(data: Data, dataset: geoxr.GeoDataset, indices: Sequence[int]) -> None:
    """Check that geoxr chips equal the rasterio reads they are timed against."""
    with rasterio.open(data.image) as img, rasterio.open(data.labels) as lbl:
        extent = geoxr.Window(0, 0, img.height, img.width)
        for i in indices:
            window = dataset.windows[i]
            inner = window.intersection(extent)
            image, mask = dataset[i]
            rows = slice(inner.ymin - window.ymin, inner.ymax - window.ymin)
            cols = slice(inner.xmin - window.xmin, inner.xmax - window.xmin)
            expected = img.read(window=inner.to_rasterio())
            expected_labels = lbl.read(1, window=inner.to_rasterio())
            if not (
                np.array_equal(image[:, rows, cols].numpy(), expected.astype(np.float32))
                and np.array_equal(mask[rows, cols].numpy(), expected_labels.astype(np.int64))
            ):
                raise AssertionError(f"geoxr chip {i} ({window}) differs from rasterio's read")


def make_dataset(
    mode: str, scene: geoxr.Scene, *, max_windows: int, seed: int
) -> tuple[geoxr.GeoDataset, Dataset]:
    """A fresh geoxr dataset for ``mode`` and what the DataLoader iterates.

    Sliding: the full plan, iterated through a ``Subset`` of its first
    ``max_windows`` windows. Random: ``max_windows`` windows planned from ``seed``
    (the same windows on every call).
    """
    if mode == "sliding":
        full = geoxr.SemanticSegmentationSlidingWindowGeoDataset(scene, size=256, stride=256)
        return full, Subset(full, range(min(max_windows, len(full))))
    ds = geoxr.SemanticSegmentationRandomWindowGeoDataset(
        scene, size_lims=(256, 257), max_windows=max_windows, seed=seed
    )
    return ds, ds


def bench_mode(
    mode: str,
    scene: geoxr.Scene,
    data: Data,
    *,
    max_windows: int,
    seed: int,
    workers: Sequence[int],
    batch_size: int,
    rounds: int,
    quiet: Quiet,
    free_tile_memory: bool = False,
) -> ModeResult:
    """Time one window plan in ``rounds`` rounds of: rasterio, then geoxr at each ``num_workers``.

    Interleaving the passes spreads any drift of the machine over all
    configurations alike; figures are medians over the rounds. ``quiet`` keeps
    passes away from other processes' load where it can. Each geoxr pass
    gets a dataset of its own, as a fresh training script would (this also
    sidesteps geoxr's thread pool surviving a fork, see the README), and an
    emptied shared tile cache, whose pages are kept unless ``free_tile_memory``.
    """
    dataset, loader_set = make_dataset(mode, scene, max_windows=max_windows, seed=seed)
    windows = dataset.windows[: len(loader_set)]  # type: ignore[arg-type]
    result = ModeResult(mode, len(windows), len(windows) - batch_size, quiet.threshold)
    extent = geoxr.Window(0, 0, data.size, data.size)
    edge = next((i for i, w in enumerate(windows) if not extent.contains(w)), None)
    check_same_pixels(data, dataset, [0] if edge is None else [0, edge])

    def report(r: int, t: Timing) -> None:
        ratio = "" if t.name == "rasterio" else f"  {t.rate / result.limit:5.2f}x rasterio"
        startup = f"  first batch after {t.startup_s:.2f} s" if t.startup_s else ""
        print(
            f"  {mode:8s} round {r + 1}  {t.name:10s} {t.chips:5d} chips in {t.seconds:6.2f} s"
            f" = {t.rate:7.1f} chips/s{ratio}  [others: {t.others:.2f} cores]{startup}"
            + (f"  (attempt {t.attempts})" if t.attempts > 1 else ""),
            flush=True,
        )

    def geoxr_pass(w: int) -> Timing:
        _, loader_set = make_dataset(mode, scene, max_windows=max_windows, seed=seed)
        if (tiles := shared_tile_cache()) is not None:
            # No pass reads tiles an earlier pass decoded; the memory stays unless asked.
            tiles.clear(free_memory=free_tile_memory)
        return time_loader(loader_set, workers=w, batch_size=batch_size)

    for r in range(rounds):
        result.baselines.append(quiet.run(lambda: time_rasterio(data, windows, warmup=batch_size)))
        report(r, result.baselines[-1])
        for w in workers:
            timing = quiet.run(lambda w=w: geoxr_pass(w))
            result.runs.setdefault(w, []).append(timing)
            report(r, timing)
    return result


# --------------------------------------------------------------------------------------
# Report


def table(results: Sequence[ModeResult]) -> str:
    """A plain-text table: chips/s per mode and num_workers, the limit and the ratio.

    ``(min-max)`` spans the passes a figure comes from, ``quiet`` counts the
    passes run on a quiet machine and ``others`` is the median CPU (in cores)
    that other processes used during the geoxr passes kept.
    """
    head = (
        f"{'windows':<8} {'workers':>7} {'geoxr chips/s':>13} {'(min-max)':>11} {'quiet':>5} "
        f"{'others':>6} {'rasterio limit':>14} {'(min-max)':>11} {'quiet':>5} {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        base = r.kept(r.baselines)
        for w, runs in r.runs.items():
            kept = r.kept(runs)
            lines.append(
                f"{r.mode:<8} {w:>7} {r.rate(w):>13.1f} {_spread(kept):>11} "
                f"{_quiet(r, runs):>5} {median(t.others for t in kept):>6.2f} "
                f"{r.limit:>14.1f} {_spread(base):>11} {_quiet(r, r.baselines):>5} "
                f"{r.rate(w) / r.limit:>6.2f}"
            )
    return "\n".join(lines)


def _quiet(result: ModeResult, passes: Sequence[Timing]) -> str:
    """``quiet/all`` passes."""
    n = sum(t.others <= result.quiet_threshold for t in passes)
    return f"{n}/{len(passes)}"


def _spread(passes: Sequence[Timing]) -> str:
    """``(min-max)`` chips/s of a few passes."""
    rates = [t.rate for t in passes]
    return f"({min(rates):.0f}-{max(rates):.0f})"


def to_json(
    results: Sequence[ModeResult], data: Data, args: argparse.Namespace, env: dict[str, object]
) -> dict[str, object]:
    """Everything measured, as a JSON-ready dict."""
    return {
        "env": env,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(data).items()},
        "page_cache": "warm: both files read once end to end before timing",
        "results": [
            {
                "mode": r.mode,
                "windows": r.windows,
                "timed_chips_per_pass": r.timed_chips,
                "rasterio_limit_chips_per_s": r.limit,
                "rasterio_passes_chips_per_s": [t.rate for t in r.baselines],
                "rasterio_passes_other_processes_cores": [t.others for t in r.baselines],
                "geoxr": [
                    {
                        "num_workers": w,
                        "chips_per_s": r.rate(w),
                        "ratio_to_limit": r.rate(w) / r.limit,
                        "passes_chips_per_s": [t.rate for t in runs],
                        "passes_first_batch_s": [t.startup_s for t in runs],
                        "passes_other_processes_cores": [t.others for t in runs],
                        "passes_attempts": [t.attempts for t in runs],
                    }
                    for w, runs in r.runs.items()
                ],
            }
            for r in results
        ],
    }


def environment() -> dict[str, object]:
    """Date, machine and library versions."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "geoxr": geoxr.__version__,
        "torch": torch.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "numpy": np.__version__,
        "geoxr_commit": _git_commit(),
    }


def _git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when geoxr/ has uncommitted changes."""
    try:
        run = dict(cwd=HERE.parent, capture_output=True, text=True, timeout=10, check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "geoxr"], **run).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


def _cachemax() -> str:
    """GDAL's block cache size, readable."""
    value = rasterio.env.get_gdal_config("GDAL_CACHEMAX")
    if value is None:
        return "GDAL default (5% of RAM)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    # GDAL reads values below 100000 as megabytes.
    return f"{number:.0f} MB" if number < 100_000 else f"{number / 2**20:.0f} MB"


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages, where the OS tells them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=10000, help="raster edge in pixels (10000)")
    p.add_argument(
        "--workdir", type=Path, default=HERE / "_work", help="cache of generated rasters"
    )
    p.add_argument(
        "--max-windows",
        type=int,
        default=1600,
        help="windows per pass, the first ones of the sliding plan and the random plan's "
        "max_windows (1600: all sliding windows of a 10000 px raster)",
    )
    p.add_argument("--batches", type=int, help="alternatively: batches per pass (overrides)")
    p.add_argument("--batch-size", type=int, default=16, help="DataLoader batch size (16)")
    p.add_argument(
        "--workers", type=str, default="0,1,2", help="num_workers values, comma-separated (0,1,2)"
    )
    p.add_argument(
        "--modes",
        type=str,
        default="sliding,random",
        help="sliding and/or random, comma-separated",
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every pass (5)")
    p.add_argument(
        "--torch-threads",
        type=int,
        help="torch.set_num_threads in the main process (default: torch's own, one per core)",
    )
    p.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="cores other processes may use during a pass before it is rerun; 0: off (0.25)",
    )
    p.add_argument(
        "--quiet-budget",
        type=float,
        default=120.0,
        help="seconds the run may spend waiting for a quiet machine and rerunning (120)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random windows (0)")
    p.add_argument(
        "--free-tile-memory",
        action="store_true",
        help="give the shared tile cache's pages back between passes, so each pass with "
        "several workers writes its tiles into fresh memory, as the first epoch of a new "
        "process does (default: a pass forgets the tiles and keeps the pages, as the "
        "limit's process keeps the heap GDAL's cache used)",
    )
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if args.batches is not None:
        args.max_windows = args.batches * args.batch_size
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.max_windows <= args.batch_size:
        p.error("--max-windows must exceed one (warm-up) batch")
    args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= {"sliding", "random"}:
        p.error("--modes takes sliding and/or random")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Generate or reuse the data, time every configuration, print the table."""
    args = parse_args(argv)
    total_start = time.perf_counter()
    env = environment()
    print(
        f"{env['date']}  {env['cpus']} CPUs ({env['processor']}), python {env['python']}, "
        f"torch {env['torch']}, rasterio {env['rasterio']} (GDAL {env['gdal']}), "
        f"geoxr {env['geoxr_commit']}"
    )
    data = ensure_data(args.workdir, args.size)
    gen = f"generated in {data.generation_s:.1f} s" if data.generated else "cached"
    if not data.generated and data.generation_s == data.generation_s:
        gen += f" (generation took {data.generation_s:.1f} s)"
    print(
        f"Data: {data.image.name} {data.image_mb:.0f} MB, {data.labels.name} "
        f"{data.labels_mb:.0f} MB; {gen}. Not part of the figures."
    )
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    env["torch_threads"] = torch.get_num_threads()
    env["gdal_cachemax"] = _cachemax()
    print(
        f"torch threads in the main process: {env['torch_threads']} (DataLoader workers: 1); "
        f"GDAL_CACHEMAX: {env['gdal_cachemax']}; load average {_loadavg()}."
    )
    warm_s = warm_page_cache([data.image, data.labels])
    print(
        f"Page cache: both files were read once end to end before timing ({warm_s:.1f} s), so "
        f"every pass reads from memory, not disk. {args.rounds} interleaved rounds of "
        "(rasterio, geoxr at each num_workers)."
    )
    memory = "given back" if args.free_tile_memory else "kept (--free-tile-memory gives them back)"
    print(
        f"Each pass: {args.max_windows} windows, the first batch ({args.batch_size}) is "
        "untimed warm-up for geoxr and rasterio alike. The shared tile cache is emptied "
        f"before each geoxr pass, its pages {memory}.\n"
    )

    quiet = Quiet(threshold=args.quiet_threshold, budget_s=args.quiet_budget)
    scene = geoxr.make_ss_scene(
        str(data.image),
        label_raster_uri=str(data.labels),
        class_config=geoxr.ClassConfig(["a", "b", "c"]),
    )
    results = [
        bench_mode(
            mode,
            scene,
            data,
            max_windows=args.max_windows,
            seed=args.seed,
            workers=args.workers,
            batch_size=args.batch_size,
            rounds=args.rounds,
            quiet=quiet,
            free_tile_memory=args.free_tile_memory,
        )
        for mode in args.modes
    ]
    print("\n" + table(results))
    total = time.perf_counter() - total_start
    print(
        f"Load average at the end: {_loadavg()}. Waiting for a quiet machine and rerunning "
        f"busy passes took {quiet.spent_s:.0f} s of the {quiet.budget_s:.0f} s allowed; the "
        f"figures are medians over the passes during which other processes used at most "
        f"{quiet.threshold} cores ('quiet'), or over all passes where none did."
    )
    print(f"\nTotal {total:.0f} s (data generation {'included' if data.generated else 'cached'}).")
    if args.json:
        out = to_json(results, data, args, env)
        out["total_s"] = total
        out["quiet"] = asdict(quiet)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
