"""Run write tasks on the active dask scheduler, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
from dask.delayed import Delayed

__all__ = ["compute_tasks", "distributed_client"]


def distributed_client() -> Any:
    """The active ``dask.distributed`` Client, or ``None`` (local scheduler)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return get_client()
    except ValueError:
        return None


def compute_tasks(tasks: Sequence[Delayed], *, progress: bool, desc: str) -> None:
    """Compute ``tasks`` on the active scheduler; show progress when asked."""
    if not tasks:
        return
    client = distributed_client()
    if client is not None:
        futures = client.compute(list(tasks))
        if progress:
            from distributed import progress as show_progress

            show_progress(futures, notebook=False)
        client.gather(futures)
        return
    if progress:
        from tqdm.dask import TqdmCallback

        with TqdmCallback(desc=desc, mininterval=1.0):
            dask.compute(*tasks)
    else:
        dask.compute(*tasks)
