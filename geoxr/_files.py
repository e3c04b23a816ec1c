"""Which version of a local file a path holds now."""

from __future__ import annotations

import os

__all__ = ["file_identity"]


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """A local file's inode, size and modification time in ns (``None``: no local file).

    A file replaced or saved again has another identity; URLs, ``/vsi`` paths and
    VRT XML have none.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     len(file_identity(f.name))
    3
    >>> file_identity("/vsicurl/https://example.com/a.tif") is None
    True
    """
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
