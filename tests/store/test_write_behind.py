"""Chunk files reach the disk behind their writer and leave the page cache: measured with mincore."""

import ctypes
import ctypes.util
import mmap
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from geoxr.store._write_behind import WriteBehind, write_behind
from geoxr.store._zarr_chunks import ChunkFiles

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="posix_fadvise and mincore: Linux"
)
PAGE = mmap.PAGESIZE
MIB = 1 << 20


def _file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts)."""
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    path = path.resolve()
    best = max((m for m in mounts if path.is_relative_to(m[0])), key=lambda m: len(m[0]))
    return best[1]


@pytest.fixture
def disk_dir(tmp_path):
    # tmpfs keeps files in memory: there is no disk write and no page to drop.
    if _file_system(tmp_path) in {"tmpfs", "ramfs"}:
        pytest.skip(f"{tmp_path} is on {_file_system(tmp_path)}, not a disk")
    return tmp_path


def cached_pages(path: Path) -> int:
    """How many of ``path``'s pages the page cache holds (``mincore`` over a mapping)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = path.stat().st_size
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)  # mapping the file reads none of it
        residency = (ctypes.c_ubyte * -(-size // PAGE))()
        status = libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), size, residency)
        del start
    assert status == 0, os.strerror(ctypes.get_errno())
    return sum(page & 1 for page in residency)


def _noise(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes()


def test_files_are_dropped_once_later_ones_exceed_the_budget(disk_dir):
    behind = WriteBehind(budget=3 * MIB)
    paths = [disk_dir / f"file{i}" for i in range(6)]
    payloads = [_noise(MIB, i) for i in range(6)]
    for path, data in zip(paths, payloads, strict=True):
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            behind.written(path, f.fileno(), len(data))
    pages = [cached_pages(p) for p in paths]
    assert pages[:3] == [0, 0, 0], pages  # flushed and dropped
    assert pages[3:] == [MIB // PAGE] * 3, pages  # the latest 3 MiB stay cached
    assert behind.pending_bytes() == 3 * MIB
    for path, data in zip(paths, payloads, strict=True):
        assert path.read_bytes() == data  # and every file reads back whole


def test_a_file_renamed_or_deleted_before_its_turn_is_left_alone(disk_dir):
    behind = WriteBehind(budget=MIB)
    first, second, third = (disk_dir / name for name in ("a", "b", "c"))
    for path in (first, second):
        with open(path, "wb") as f:
            f.write(_noise(MIB, 0))
            f.flush()
            behind.written(path, f.fileno(), MIB)
    # "a" was flushed when "b" came; "b" goes before its turn.
    second.rename(disk_dir / "moved")
    with open(third, "wb") as f:
        f.write(_noise(MIB, 1))
        f.flush()
        behind.written(third, f.fileno(), MIB)  # "b" is due now: not found, no error
    assert behind.pending_bytes() == MIB
    assert (disk_dir / "moved").read_bytes() == _noise(MIB, 0)


def test_a_store_larger_than_the_budget_passes_through_it(disk_dir):
    """A Zarr array's chunk files, as a label store writes them, keep 32 MiB cached at most."""
    chunk = (1, 512, 1024)  # 2 MiB of float32 noise a chunk: 48 chunks, 96 MiB
    array = zarr.create_array(
        str(disk_dir / "scores.zarr"),
        shape=(1, 512 * 6, 1024 * 8),
        chunks=chunk,
        dtype="float32",
        compressors=None,
        fill_value=np.nan,
    )
    files = ChunkFiles(array)
    rng = np.random.default_rng(0)
    blocks = {}
    for row in range(6):
        for col in range(8):
            blocks[row, col] = rng.standard_normal(chunk, dtype=np.float32)
            files.write((0, row, col), blocks[row, col])
    chunk_files = sorted((disk_dir / "scores.zarr" / "c").rglob("*"))
    chunk_files = [p for p in chunk_files if p.is_file()]
    assert len(chunk_files) == 48
    cached = sum(cached_pages(p) for p in chunk_files) * PAGE
    assert cached <= write_behind().budget  # was all 96 MiB (until the kernel's flusher ran)
    assert cached_pages(disk_dir / "scores.zarr" / "c" / "0" / "0" / "0") == 0
    back = zarr.open_array(str(disk_dir / "scores.zarr"), mode="r")
    for (row, col), values in blocks.items():
        part = (
            slice(None),
            slice(512 * row, 512 * row + 512),
            slice(1024 * col, 1024 * col + 1024),
        )
        np.testing.assert_array_equal(back[part], values)


def test_files_smaller_than_the_smallest_are_left_to_the_kernel(disk_dir):
    # A label store writes a 1-byte progress mark per block: a sync each cost more than it saved.
    behind = WriteBehind(budget=MIB, smallest=64 << 10)
    mark = disk_dir / "mark"
    with open(mark, "wb") as f:
        f.write(b"\x01")
        f.flush()
        behind.written(mark, f.fileno(), 1)
    assert behind.pending_bytes() == 0
    assert cached_pages(mark) == 1
