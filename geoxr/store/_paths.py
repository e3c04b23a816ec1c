"""Output paths checked before any compute: nothing in the way of what a writer makes there."""

from __future__ import annotations

import os
from pathlib import Path

from geoxr.errors import OutputPathError

__all__ = ["check_output_path"]


def check_output_path(path: Path, *, what: str, directory: bool = False) -> None:
    """Raise :class:`OutputPathError` if a writer could not put its output at ``path``.

    A directory (unless the output is one, ``directory``) or a file among the
    parents stands in the way, and so does a nearest existing parent this process
    may not write in (its permissions, a read-only file system); parents that do
    not exist yet are made by the writers.

    Examples
    --------
    >>> check_output_path(Path("."), what="COG")
    Traceback (most recent call last):
    ...
    geoxr.errors.OutputPathError: COG '.' is a directory; expected a file name ...
    """
    if not directory and path.is_dir():
        raise OutputPathError(
            f"{what} {str(path)!r} is a directory; expected a file name (a new one, or a "
            "file to replace). Give a path inside that directory, or remove it first."
        )
    parent = next(p for p in path.absolute().parents if p.exists())  # the root exists
    if not parent.is_dir():
        raise OutputPathError(
            f"{what} {str(path)!r} is in {str(parent)!r}, which is a file, not a directory. "
            "Write the output somewhere else, or move that file away first."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{what} {str(path)!r} is in {str(parent)!r}, where this process may not write "
            "(its permissions, or a read-only file system). Write the output somewhere "
            "else, or make that directory writable first."
        )
