"""TORCH_CPU_MALLOC_ENV: a model's large activations stop faulting in fresh pages on every pass."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import geoxr
from geoxr.learn.cpu_malloc import shell_exports

# A conv layer whose output (16 x 8 x 256 x 256 float32: 33.5 MiB) is above glibc's
# largest adaptive mmap threshold (32 MiB), run in a worker thread as dask runs it;
# prints the minor page faults of the passes after the first.
FORWARD_PASSES = """
import json, resource
from concurrent.futures import ThreadPoolExecutor
import torch
conv = torch.nn.Conv2d(3, 8, 3, padding=1)
x = torch.rand(16, 3, 256, 256)
def passes():
    with torch.inference_mode():
        torch.relu(conv(x)).sum()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(4):
            torch.relu(conv(x)).sum()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
with ThreadPoolExecutor(1) as pool:
    print(json.dumps(pool.submit(passes).result()))
"""


def _page_faults(extra_env: dict[str, str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(extra_env, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", FORWARD_PASSES], env=env, capture_output=True, text=True, check=True
    )
    return int(json.loads(run.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc settings"
)
def test_malloc_env_stops_page_faults_of_large_activations() -> None:
    default = _page_faults({})
    tuned = _page_faults(geoxr.TORCH_CPU_MALLOC_ENV)
    # 4 passes x two 33.5 MiB tensors x 8192 pages, unless the heap keeps them.
    assert default > 4 * 8192
    assert tuned < default / 5


def test_shell_exports_keep_the_users_settings() -> None:
    exports = shell_exports({"MALLOC_ARENA_MAX": "4"}).splitlines()
    assert exports == [
        f"export {name}={value}"
        for name, value in geoxr.TORCH_CPU_MALLOC_ENV.items()
        if name != "MALLOC_ARENA_MAX"
    ]
    assert shell_exports(geoxr.TORCH_CPU_MALLOC_ENV) == ""


def test_dask_workers_get_the_settings_through_local_cluster_env() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            env=geoxr.TORCH_CPU_MALLOC_ENV,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        seen = client.run(lambda: {k: os.environ.get(k) for k in geoxr.TORCH_CPU_MALLOC_ENV})
    assert list(seen.values()) == [geoxr.TORCH_CPU_MALLOC_ENV]
