"""glibc malloc settings for processes that run torch models on CPU.

glibc serves every allocation above its mmap threshold with a fresh ``mmap`` and
gives it back with ``munmap`` when freed. The threshold adapts up to 32 MiB at
most, and a model's activations are often larger: a batch of 16 chips of
256 x 256 pixels with 8 channels is 33.5 MiB of float32. Every forward pass then
maps, zero-fills and unmaps those pages again: the tiny model of
``benchmarks/predict.py`` spent half its CPU time in the kernel doing so, and ran
2.6-2.8 times faster without it (on 2 cores). Threads other than the main one (dask's, for
example) allocate from their own arenas, whose heaps glibc unmaps as soon as
they are empty, so those threads also need a single arena.

These settings only take effect when a process starts, so they go in the
environment of the process (the shell, a job script, a dask worker's nanny), not
in code. A process that sets them keeps up to its peak memory instead of
handing freed memory back to the system.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["TORCH_CPU_MALLOC_ENV", "shell_exports"]

#: Environment variables for glibc's malloc in a process that runs torch on CPU:
#: allocations up to 256 MiB come from the heap, up to 1 GiB of freed heap is kept
#: for reuse, and all threads share one arena. Pass them to dask workers with
#: ``distributed.LocalCluster(env=TORCH_CPU_MALLOC_ENV)`` or the
#: ``distributed.nanny.pre-spawn-environ`` configuration.
TORCH_CPU_MALLOC_ENV: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(256 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(2**30),
    "MALLOC_ARENA_MAX": "1",
}


def shell_exports(environ: Mapping[str, str] | None = None) -> str:
    """``export`` lines for the settings that ``environ`` (``os.environ``) does not set yet.

    A shell script evaluates them before it starts Python, so that settings of
    the user's own are kept::

        eval "$(python -c 'import geoxr; print(geoxr.learn.cpu_malloc.shell_exports())')"

    Examples
    --------
    >>> print(shell_exports({"MALLOC_ARENA_MAX": "4"}))
    export MALLOC_MMAP_THRESHOLD_=268435456
    export MALLOC_TRIM_THRESHOLD_=1073741824
    """
    environ = os.environ if environ is None else environ
    return "\n".join(
        f"export {name}={value}"
        for name, value in TORCH_CPU_MALLOC_ENV.items()
        if name not in environ
    )
