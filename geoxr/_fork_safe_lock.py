"""A thread lock that a forked process gets anew, not in the state its parent left it."""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

__all__ = ["ForkSafeLock"]


class ForkSafeLock:
    """A ``threading.Lock`` replaced by a new one in every process forked from this one.

    A thread of the parent may hold the lock as another forks (a DataLoader worker
    started during a read-ahead); the child has no such thread, so a copied lock
    would never be released there.

    Examples
    --------
    >>> lock = ForkSafeLock()
    >>> with lock:
    ...     lock.locked()
    True
    >>> lock.locked()
    False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _renew(ref()))

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()

    def locked(self) -> bool:
        """Whether a thread holds the lock."""
        return self._lock.locked()


def _renew(lock: ForkSafeLock | None) -> None:
    if lock is not None:
        lock._lock = threading.Lock()
