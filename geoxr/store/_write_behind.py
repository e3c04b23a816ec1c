"""Files written to disk a little behind their writer, their pages then dropped from the page cache.

A label store of a large scene writes far more bytes than a machine's memory. Left
to the kernel, every byte written stays in the page cache as a dirty page until the
kernel's flusher gets to it (after 30 s, or once a tenth of the memory is dirty),
and then as a clean one until memory runs short: the store pushes whatever else the
page cache held out of it, and each of its own writes goes into a page the writer's
process has not touched before. On virtual machines whose balloon hands free memory
back to the host (as the 2-core VMs geoxr is benchmarked on do), a page never touched
costs a host fault too: writing 800 MB of chunk files cost 1.9 CPU s that way,
against 0.3 s when each file was flushed and dropped right after the next one.

:class:`WriteBehind` starts the disk write of each file as soon as it is written and,
once later files have added up to its budget, waits for that write (mostly long
done) and drops the file's pages. The page cache a store passes through then stays
about the budget, and the kernel gives those pages to the next writes. Files are
named by path: one renamed or deleted meanwhile (a finished store moved into place)
is left to the kernel. Where the platform lacks ``posix_fadvise`` (macOS, Windows)
it does nothing.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from pathlib import Path

from geoxr._fork_safe_lock import ForkSafeLock

__all__ = ["WriteBehind", "write_behind"]

_SUPPORTED = hasattr(os, "posix_fadvise") and hasattr(os, "fdatasync")
# What a file system that cannot sync or advise (some FUSE and network mounts) answers.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE}


class WriteBehind:
    """Flushes written files to disk and drops their cached pages, ``budget`` bytes behind.

    One instance serves every thread of a process (:func:`write_behind`).

    Parameters
    ----------
    budget : int
        Bytes of the latest written files left in the page cache.
    smallest : int
        Files smaller than this are left to the kernel: little to drop, and a sync
        each (a journal commit) would cost more (a label store's 1-byte progress
        marks, say).

    Examples
    --------
    >>> import tempfile
    >>> behind = WriteBehind(budget=4, smallest=1)
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in "abc":
    ...     with open(folder / name, "wb") as f:
    ...         _ = f.write(b"xyz")
    ...         f.flush()
    ...         behind.written(folder / name, f.fileno(), 3)
    >>> behind.pending_bytes()  # "a" and "b" flushed and dropped; "c" still cached
    3
    """

    def __init__(self, budget: int, *, smallest: int = 64 << 10) -> None:
        self.budget = budget
        self.smallest = smallest
        self._files: deque[tuple[Path, int]] = deque()
        self._bytes = 0
        self._lock = ForkSafeLock()

    def written(self, path: Path, fd: int, size: int) -> None:
        """Note that ``size`` bytes were written (and flushed from Python) to the open ``fd``.

        ``path`` names the file from now on (the writer may rename its file there
        after this call). Starts the disk write, then flushes and drops the oldest
        files noted until at most ``budget`` bytes remain (the latest file always does).
        """
        if not _SUPPORTED or size < self.smallest:
            return
        # On a file with dirty pages, POSIX_FADV_DONTNEED starts their write-back and
        # returns; it drops only pages already clean (none yet).
        _drop_cached(fd)
        due = []
        with self._lock:
            self._files.append((path, size))
            self._bytes += size
            while self._bytes > self.budget and len(self._files) > 1:
                old, old_size = self._files.popleft()
                self._bytes -= old_size
                due.append(old)
        for old in due:
            _flush_and_drop(old)

    def pending_bytes(self) -> int:
        """Bytes of the files written but not yet flushed and dropped."""
        with self._lock:
            return self._bytes


def _flush_and_drop(path: Path) -> None:
    """Wait for ``path``'s pages to reach the disk, then drop them from the page cache."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # renamed or deleted since: the kernel writes it back in its own time
        return
    try:
        try:
            os.fdatasync(fd)
        except OSError as error:
            if error.errno not in _UNSUPPORTED:  # a failed disk write is not left unsaid
                error.filename = os.fspath(path)
                raise
        _drop_cached(fd)
    finally:
        os.close(fd)


def _drop_cached(fd: int) -> None:
    """Drop ``fd``'s clean cached pages and start writing its dirty ones."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as error:
        if error.errno not in _UNSUPPORTED:
            raise


_WRITE_BEHIND = WriteBehind(budget=32 << 20)


def write_behind() -> WriteBehind:
    """This process's :class:`WriteBehind` (32 MiB behind), shared by the label stores' writers."""
    return _WRITE_BEHIND
