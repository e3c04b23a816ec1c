"""Which ``dask.distributed`` Client is active, if any."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["distributed_client"]


def distributed_client() -> Any:
    """The active ``dask.distributed`` Client, or ``None`` (a local scheduler).

    Without ``distributed`` imported no Client can be active: it is not imported
    for the question (0.5 s).

    Examples
    --------
    >>> distributed_client() is None
    True
    """
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None
