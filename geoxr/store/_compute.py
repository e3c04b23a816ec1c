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


def compute_tasks(tasks: Sequence[Delayed], *, progress: bool, desc: str) -> list[Any]:
    """Compute ``tasks`` on the active scheduler (a distributed Client if one is active).

    ``dask.compute`` already runs on an active Client; the Client is asked for
    directly only to show its progress bar, since tqdm's dask callback sees the
    local schedulers alone.
    """
    if not progress or not tasks:
        return list(dask.compute(*tasks))
    client = distributed_client()
    if client is not None:
        from distributed import progress as show_progress

        futures = client.compute(list(tasks))
        show_progress(futures, notebook=False)
        return list(client.gather(futures))
    from tqdm.dask import TqdmCallback

    with TqdmCallback(desc=desc, mininterval=1.0):
        return list(dask.compute(*tasks))
