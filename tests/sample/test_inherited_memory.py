"""DataLoader workers give back the free heap memory they inherit from the main process."""

from __future__ import annotations

import os
import platform

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

import geoxr.sample._batch_reader as batch_reader
from geoxr import SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.sample._inherited_memory import give_back_inherited_free_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_go_back_to_the_system():
    # Many small arrays come from malloc's heap; freed, the heap keeps their pages.
    arrays = [np.ones(4096, np.uint8) for _ in range(20_000)]  # 80 MB written
    resident = _resident_bytes()
    del arrays
    assert give_back_inherited_free_memory()
    assert _resident_bytes() < resident - 40 * 2**20


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_each_worker_gives_it_back_once_before_reading(
    nc_stack, nc_strata, nc_class_config, tmp_path, monkeypatch
):
    def noting() -> bool:  # one file per call, named after the calling process
        calls = len(list(tmp_path.iterdir()))
        (tmp_path / f"{os.getpid()}-{calls}").touch()
        return True

    monkeypatch.setattr(batch_reader, "give_back_inherited_free_memory", noting)
    scene = make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)
    dataset = Subset(
        SemanticSegmentationSlidingWindowGeoDataset(scene, size=32, stride=32), range(32)
    )
    for images, _ in DataLoader(dataset, batch_size=4, num_workers=2, timeout=20):
        assert images.dtype == torch.float32
    list(DataLoader(dataset, batch_size=4, num_workers=0))
    callers = [name.split("-")[0] for name in os.listdir(tmp_path)]
    assert len(callers) == len(set(callers)) == 2  # once in each worker
    assert str(os.getpid()) not in callers  # never in the main process
