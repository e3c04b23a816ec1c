"""A forked process gives back the free heap memory it inherited from its parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["give_back_inherited_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or ``None`` where it has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def give_back_inherited_free_memory() -> bool:
    """Return the heap's free pages to the system, as a forked process starts.

    A forked process (a DataLoader worker) shares its parent's pages until it
    writes to them. The parent's heap keeps the memory it freed (the batches,
    tiles and arrays of earlier work) for reuse, and the child's allocations would
    reuse it too: every first write to such a page copies it from the parent, a
    page fault several times as costly as a fresh page (random windows read in a
    worker forked after one pass in the parent spent a third to a half of their
    CPU in the kernel). Returning the free pages first makes them fresh pages again.

    Returns whether the C library could do it (glibc's ``malloc_trim``).

    Examples
    --------
    >>> give_back_inherited_free_memory() in (True, False)
    True
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
