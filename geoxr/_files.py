"""Local files: which version a path holds now, and writing one whole or not at all."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["file_identity", "write_atomically"]


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


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Have ``write(tmp)`` write a temporary file beside ``path``, then rename it to ``path``.

    Readers of ``path`` see the old file or the whole new one, never a part: a
    crash midway leaves only the hidden temporary file (``.<stem>.<hex>.partial<suffix>``,
    safe to delete), and a ``write`` that raises leaves nothing. The temporary name is unique (two writers never share it) and
    keeps ``path``'s suffix, from which some writers tell the format.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "history.json"
    >>> write_atomically(path, lambda tmp: tmp.write_text("[]")).read_text()
    '[]'
    >>> write_atomically(path, lambda tmp: 1 / 0)
    Traceback (most recent call last):
    ...
    ZeroDivisionError: division by zero
    >>> sorted(p.name for p in path.parent.iterdir()), path.read_text()
    (['history.json'], '[]')
    """
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
