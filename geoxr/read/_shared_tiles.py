"""Decoded raster tiles shared by a process and the processes it forks (DataLoader workers).

Each process decodes tiles with GDAL handles of its own, and GDAL caches decoded
tiles per handle. Windows that share tiles (random windows touch up to four
tiles each) read by several DataLoader workers would each decode a shared tile
again, once per worker. A :class:`SharedTileCache` keeps decoded tiles in memory
shared with every process forked after it was made, so a tile one worker decoded
is copied, not decoded again, by the others.

The memory is an anonymous shared mapping: nothing to name or clean up. It is
taken page by page as tiles are written (shared memory: it counts against a
container's memory limit and is not swapped out without swap) and given back
once no dataset holds the cache any more (:meth:`SharedTileCache.hold`). It is a
ring: a decoded tile is written after the last one, over the oldest, and an
index (a hash table in the same mapping) says where each tile lies. Writers
reserve room, write the tile and index it under a lock held for that copy: a
thread lock (renewed in forked processes) for the threads of a process and a
POSIX record lock for the processes, which the system releases when its holder
dies (a DataLoader worker ended mid-read cannot leave the others waiting).
Readers on x86 take no lock: an index entry carries a check value that a torn
read does not match, and a reader that copied a tile's pixels then checks that
no writer reserved those bytes meanwhile (if one did, it decodes the tile
itself). On CPUs that may reorder loads (ARM) readers look up and check under
the lock.

Processes started with ``spawn`` or ``forkserver`` share nothing with their
parent: they read without the cache (:func:`inherited_tile_cache`).
"""

from __future__ import annotations

import errno
import fcntl
import math
import mmap
import os
import platform
import sys
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import NamedTuple

import numpy as np

from geoxr._fork_safe_lock import ForkSafeLock
from geoxr.errors import ConfigError, GeoxrWarning

__all__ = [
    "SharedTileCache",
    "TileKey",
    "inherited_tile_cache",
    "made_tile_cache",
    "shared_tile_cache",
    "tile_cache_bytes",
    "usable_ram",
]

#: Whether this CPU keeps loads in order (x86's total store order), so a reader may
#: check what it copied without the lock; on ARM and others readers take the lock.
_LOADS_IN_ORDER = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686"}
#: Environment variable giving the cache's size in MiB (0 turns it off).
CACHE_ENV = "GEOXR_TILE_CACHE_MB"
CGROUP_V2_LIMIT = "/sys/fs/cgroup/memory.max"
CGROUP_V1_LIMIT = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
_HEADER = 1  # int64 slots before the index: the ring's head
_ENTRY = 5  # int64 slots per index entry: source, tile, position, bytes, check
_WAYS = 4  # entries a tile may take: its bucket and the next three
_MASK64 = 2**64 - 1
_NO_LOCK = nullcontext()  # reusable: what a reader holds where loads stay in order
#: ``madvise`` advice that maps a range's pages in one call (Linux 5.14+; CPython's mmap
#: module does not name it).
_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23 if sys.platform == "linux" else None)


class TileKey(NamedTuple):
    """One tile of one source: ``source`` names the file and bands read, ``tile`` the tile."""

    source: int
    tile: int


class SharedTileCache:
    """Decoded tiles in memory shared with the processes forked after it was made.

    Parameters
    ----------
    capacity : int
        Bytes of tile pixels kept; older tiles are overwritten by newer ones.
    buckets : int, optional
        Buckets of the index (default: one per 16 KiB of capacity, at least 4096);
        a tile's entry is in its bucket or one of the next three.

    Examples
    --------
    >>> cache = SharedTileCache(1 << 20)
    >>> def decode(into):
    ...     into[...] = np.arange(6).reshape(1, 2, 3)
    >>> out = np.zeros((1, 2, 2), np.uint8)
    >>> right = (slice(None), slice(None), slice(1, 3))
    >>> cache.copy_tile(TileKey(source=7, tile=3), (1, 2, 3), np.uint8, right, out, decode)
    True
    >>> out[0].tolist()
    [[1, 2], [4, 5]]
    >>> cache.copy_tile(TileKey(source=7, tile=3), (1, 2, 3), np.uint8, right, out, decode)
    False
    >>> len(cache)
    1
    """

    def __init__(self, capacity: int, buckets: int | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"A SharedTileCache needs a capacity above 0 bytes, got {capacity}.")
        self.capacity = capacity
        self.buckets = buckets or max(4096, capacity // 16384)
        slots = _HEADER + _ENTRY * (self.buckets + _WAYS - 1)
        index_bytes = -(-slots * 8 // mmap.PAGESIZE) * mmap.PAGESIZE
        # Anonymous and MAP_SHARED (mmap's default): forked children see the same pages.
        self._memory = mmap.mmap(-1, index_bytes + capacity)
        self._index_bytes = index_bytes
        self._index = np.frombuffer(self._memory, np.int64, count=index_bytes // 8)
        self._entries = self._index[_HEADER:slots].reshape(-1, _ENTRY)
        self._ring = np.frombuffer(self._memory, np.uint8, offset=index_bytes)
        self._lock_file = tempfile.TemporaryFile()  # its fd is inherited; the record lock is not
        self._thread_lock = ForkSafeLock()
        self.pid = os.getpid()
        self._holders = 0  # counted under the thread lock
        self._freeing: threading.Thread | None = None
        self._populate_write = _POPULATE_WRITE

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._lock_file, fcntl.LOCK_UN)

    def _reading(self) -> AbstractContextManager[object]:
        """What a reader holds: nothing where loads stay in order (x86), else the lock."""
        return _NO_LOCK if _LOADS_IN_ORDER else self._locked()

    def _intact(self, position: int) -> bool:
        """Whether no writer has reserved the ring's bytes written at ``position`` since."""
        return int(self._index[0]) <= position + self.capacity

    def _find(self, key: TileKey, nbytes: int) -> int | None:
        """Where the ring holds ``key``'s tile of ``nbytes`` (``None``: it does not).

        Read without the lock where the CPU keeps loads in order (x86): an entry
        being rewritten meanwhile is read torn, and its check value then does not
        match (writers only change entries under the lock).
        """
        first, (source_id, tile_id) = _bucket(key, self.buckets), key
        with self._reading():
            for source, tile, position, size, check in self._entries[
                first : first + _WAYS
            ].tolist():
                if (
                    source == source_id
                    and tile == tile_id
                    and size == nbytes
                    and check == _check(key, position, size)
                    and self._intact(position)
                ):
                    return int(position)
            return None

    def _still_intact(self, position: int) -> bool:
        """After a copy from ``position``: whether no writer reserved those bytes meanwhile.

        Lock-free where loads stay in order (x86: the copy's loads come before
        the head's). Elsewhere (ARM) a load could pass another: the lock orders them.
        """
        with self._reading():
            return self._intact(position)

    def _keep(self, key: TileKey, tile: np.ndarray) -> None:
        """Write ``tile`` after the last one and index it, all under the lock.

        The head moves on before the bytes are written, so a reader copying
        those bytes sees it moved and does not trust its copy. The tile's pages
        are mapped in one call before the copy (see :meth:`_map_pages`).
        """
        nbytes = tile.nbytes
        with self._locked():
            position = int(self._index[0])
            if position % self.capacity + nbytes > self.capacity:  # to the ring's start
                position += self.capacity - position % self.capacity
            self._index[0] = position + nbytes
            start = position % self.capacity
            self._map_pages(start, nbytes)
            self._ring[start : start + nbytes] = tile.reshape(-1).view(np.uint8)
            self._entries[self._entry_for(key)] = (
                *key,
                position,
                nbytes,
                _check(key, position, nbytes),
            )

    def _map_pages(self, start: int, nbytes: int) -> None:
        """Map the pages of the ring's ``nbytes`` at ``start`` into this process in one call.

        A process writing a tile into the ring takes its pages one page fault at a
        time: fresh shared pages on a first epoch, or pages another process wrote
        earlier. ``MADV_POPULATE_WRITE`` maps them all at once, which costs a third
        less (Linux 5.14 or later; elsewhere the copy faults them in as before).
        """
        if self._populate_write is None:
            return
        first = (self._index_bytes + start) // mmap.PAGESIZE * mmap.PAGESIZE
        try:
            self._memory.madvise(
                self._populate_write, first, self._index_bytes + start + nbytes - first
            )
        except OSError as exc:  # the copy maps the pages
            if exc.errno == errno.EINVAL:  # a kernel without it: not asked again
                self._populate_write = None

    def _entry_for(self, key: TileKey) -> int:
        """The index entry a new tile of ``key`` takes (under the lock).

        Among the ways of its bucket: the key's own entry, else an unused or
        overwritten one, else the one of the oldest tile.
        """
        first = _bucket(key, self.buckets)
        ways = self._entries[first : first + _WAYS]
        entries = ways.tolist()
        for way, (source, tile, *_) in enumerate(entries):
            if TileKey(source, tile) == key:
                return first + way
        for way, (_, _, position, size, _) in enumerate(entries):
            if size == 0 or not self._intact(position):
                return first + way
        return first + int(np.argmin(ways[:, 2]))

    def _pixels(self, position: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.ndarray(shape, dtype, buffer=self._ring, offset=position % self.capacity)

    def copy_tile(
        self,
        key: TileKey,
        shape: tuple[int, ...],
        dtype: np.dtype | type,
        index: tuple[slice, ...],
        out: np.ndarray,
        decode: Callable[[np.ndarray], object],
    ) -> bool:
        """Copy ``tile[index]`` into ``out``, decoding the tile only if the cache misses it.

        ``shape`` and ``dtype`` are the whole tile's; ``decode(into)`` writes the
        tile's pixels into the array ``into``. A decoded tile is kept for later
        calls (a tile larger than a quarter of the cache is not). Returns whether
        the tile was decoded.
        """
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        position = self._find(key, nbytes)
        if position is not None:
            np.copyto(out, self._pixels(position, shape, dtype)[index])
            if self._still_intact(position):
                return False
        pixels = np.empty(shape, dtype)
        decode(pixels)
        np.copyto(out, pixels[index])
        if nbytes <= self.capacity // 4:
            self._keep(key, pixels)
        return True

    def __len__(self) -> int:
        """How many tiles the cache holds (as its index tells, at this moment)."""
        head = int(self._index[0])
        sizes, positions = self._entries[:, 3], self._entries[:, 2]
        return int(np.count_nonzero((sizes > 0) & (positions + self.capacity >= head)))

    def clear(self, *, free_memory: bool = True) -> None:
        """Forget every tile, for every process sharing the cache, and free its memory.

        With ``free_memory=False`` the ring's pages stay: the tiles decoded next (of
        another scene, or a benchmark's next pass) are written into memory the
        processes already have, not into fresh pages, each a page fault (on a
        virtual machine that hands freed memory back to its host, a costly one).
        Once no dataset holds the cache, its memory is freed all the same.

        Examples
        --------
        >>> cache = SharedTileCache(1 << 20)
        >>> out = np.zeros((1, 2, 2), np.uint8)
        >>> cache.copy_tile(TileKey(1, 0), (1, 2, 2), np.uint8, (), out, lambda into: None)
        True
        >>> cache.clear(free_memory=False)
        >>> len(cache)
        0
        """
        with self._locked():
            self._forget_tiles(free_memory=free_memory)

    def _forget_tiles(self, *, free_memory: bool = True) -> None:
        """:meth:`clear`'s work, under the lock."""
        # The head a whole ring on, at the ring's start: every tile counts as overwritten.
        self._index[0] = (int(self._index[0]) // self.capacity + 2) * self.capacity
        if free_memory and hasattr(mmap, "MADV_REMOVE"):  # Linux
            self._memory.madvise(mmap.MADV_REMOVE, self._index_bytes, self.capacity)

    def hold(self, holder: object) -> None:
        """Keep the tiles while ``holder`` lives; once no holder does, free their memory.

        A dataset holds the cache: its DataLoader workers of later epochs copy the
        tiles the earlier ones decoded. Once the last holder is collected, the
        tiles are of no use and :meth:`clear` gives their memory back. Only holders
        in the process that made the cache count; their copies in forked
        processes (DataLoader workers) do not.

        Examples
        --------
        >>> cache = SharedTileCache(1 << 20)
        >>> class Dataset: ...
        >>> dataset = Dataset()
        >>> cache.hold(dataset)  # del dataset: the cache is emptied, its memory freed
        """
        if os.getpid() != self.pid:
            return
        with self._thread_lock:
            self._holders += 1
        release = weakref.finalize(holder, self._let_go)
        release.atexit = False  # the process's end frees the memory anyway

    def _let_go(self) -> None:
        """A holder was collected: count it off, and free the tiles after the last one.

        A finalizer runs wherever the garbage collector does, perhaps in a thread
        that holds one of the cache's locks: it takes none, and leaves the work to
        a thread of its own.
        """
        if os.getpid() != self.pid:  # a holder's copy in a forked process
            return
        self._freeing = threading.Thread(
            target=self._release_holder, name="geoxr-free-shared-tiles", daemon=True
        )
        self._freeing.start()

    def _release_holder(self) -> None:
        with self._locked():
            self._holders -= 1
            if self._holders == 0:
                self._forget_tiles()

    def __reduce__(self) -> tuple[object, ...]:
        # Shared memory cannot travel by pickle: a copy elsewhere starts empty.
        return (SharedTileCache, (self.capacity, self.buckets))


def _bucket(key: TileKey, buckets: int) -> int:
    """The first index entry of ``key``: its source and tile mixed (splitmix64), modulo ``buckets``.

    Python's own tuple hash is too regular here: the tiles of one source fall into
    buckets at fixed strides, and for some sources and bucket counts one tile in
    ten shares a bucket with another.
    """
    z = (key.source * 0x9E3779B97F4A7C15 + key.tile) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) % buckets


def _check(key: TileKey, position: int, nbytes: int) -> int:
    """A check value of an index entry: a torn read of an entry does not match it."""
    return hash((key.source, key.tile, position, nbytes, 0x5EED))


def usable_ram() -> int:
    """Bytes of RAM this process may use: the machine's, or its container's limit if lower.

    Examples
    --------
    >>> 0 < usable_ram() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    True
    """
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in (CGROUP_V2_LIMIT, CGROUP_V1_LIMIT):
        try:
            with open(limit_file) as f:
                ram = min(ram, int(f.read().strip()))
        except (OSError, ValueError):  # no such cgroup, or "max": no limit
            continue
    return ram


def tile_cache_bytes() -> int:
    """The shared cache's size: ``GEOXR_TILE_CACHE_MB`` MiB, else 5% of usable RAM.

    5% of the RAM the process may use is GDAL's default for its block cache.

    Examples
    --------
    >>> tile_cache_bytes() >= 0
    True
    """
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return usable_ram() // 20
    try:
        mib = float(value)
    except ValueError:
        mib = -1.0
    if not 0 <= mib < 2**43:  # NaN, negative and infinite sizes fail too
        raise ConfigError(
            f"{CACHE_ENV}={value!r} is not a size: expected the shared tile cache's "
            f"size in MiB, a number of 0 or more (0 turns it off), e.g. {CACHE_ENV}=1024."
        )
    return int(mib * 2**20)


_cache: SharedTileCache | None = None
_cache_failed = False
_cache_lock = ForkSafeLock()


def shared_tile_cache() -> SharedTileCache | None:
    """The tile cache this process shares with the processes it forks.

    Made on the first call, of :func:`tile_cache_bytes` bytes (``None`` if that is
    0). Datasets whose windows share tiles call it as they are made, so the
    DataLoader workers forked later share it, and hold it: once the last of them
    is collected, its memory is freed. ``shared_tile_cache().clear()`` frees it at
    once.

    Examples
    --------
    >>> cache = shared_tile_cache()
    >>> cache is None or cache.capacity == tile_cache_bytes()
    True
    """
    global _cache, _cache_failed
    with _cache_lock:
        if _cache is None and not _cache_failed and (capacity := tile_cache_bytes()) > 0:
            try:
                _cache = SharedTileCache(capacity)
            except OSError as exc:
                _cache_failed = True
                warnings.warn(
                    f"geoxr could not map {capacity / 2**20:.0f} MiB for its shared tile cache "
                    f"({exc}); DataLoader workers will each decode the tiles they read. Set "
                    f"{CACHE_ENV} to a smaller size, or to 0 to go without it.",
                    GeoxrWarning,
                    stacklevel=2,
                )
        return _cache


def made_tile_cache() -> SharedTileCache | None:
    """The shared tile cache if this process or a parent it was forked from made it; makes none."""
    return _cache


def inherited_tile_cache() -> SharedTileCache | None:
    """The shared tile cache if a parent process made it and forked this one, else ``None``.

    A process started otherwise (``spawn``, ``forkserver``) has nobody to share
    with: a cache of its own would only cost memory.
    """
    cache = made_tile_cache()
    return cache if cache is not None and cache.pid != os.getpid() else None
