"""Decoded tiles shared between processes: same pixels as GDAL, decoded once across a fork."""

from __future__ import annotations

import functools
import gc
import multiprocessing
import shutil
import threading

import numpy as np
import pytest
import rasterio

import geoxr.read._shared_tiles as shared_tiles
from geoxr.errors import ConfigError, GeoxrWarning
from geoxr.grid import Window
from geoxr.read import RasterioSource
from geoxr.read._shared_tiles import CACHE_ENV, SharedTileCache, TileKey, tile_cache_bytes

# Windows of the NC stack (443 rows x 489 columns, 256 px tiles): inside one tile,
# across two and four tiles, past the bottom and right edges (partial tiles), all of it.
WINDOWS = [
    Window(10, 20, 64, 64),
    Window(200, 30, 100, 50),
    Window(230, 220, 60, 70),
    Window(400, 430, 63, 89),
    Window(0, 0, 443, 489),
]


def _read_in_child(source: RasterioSource, windows: list[Window]) -> None:
    for window in windows:
        source.read(window)


def _forked(target, *args) -> None:
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    process.join(30)
    assert process.exitcode == 0


@pytest.mark.parametrize(
    ("raster", "channels", "capacity"),
    [
        ("nc_stack", [4, 1], 64 << 20),  # 256 px tiles, two of six bands
        # Strips four rows high (8 KiB): 64 KiB hold eight, the ring wraps within a window.
        ("nc_strata", None, 64 << 10),
    ],
)
def test_chips_through_the_cache_equal_gdal_reads(raster, channels, capacity, request):
    path = request.getfixturevalue(raster)
    bbox = Window(3, 5, 430, 480)  # tile edges fall 3 rows and 5 columns into the crop
    cached = RasterioSource(path, bbox=bbox, channel_order=channels)
    cached.tile_cache = SharedTileCache(capacity)
    plain = RasterioSource(path, bbox=bbox, channel_order=channels)
    bands = [c + 1 for c in channels or [0]]
    with rasterio.open(path) as ds:
        for _ in range(2):  # decoded, then from the cache (or decoded again once overwritten)
            for window in WINDOWS:
                chip, expected = cached.read(window), plain.read(window)
                np.testing.assert_array_equal(chip.data, expected.data)
                np.testing.assert_array_equal(
                    np.ma.getmaskarray(chip), np.ma.getmaskarray(expected)
                )
                inside = window.intersection(cached.extent).shift(3, 5)
                raw = ds.read(bands, window=inside.to_rasterio())
                rows, cols = inside.shift(-3 - window.ymin, -5 - window.xmin).slices
                np.testing.assert_array_equal(chip.data[:, rows, cols], raw)


def test_a_tile_decoded_in_a_forked_process_is_not_decoded_again(nc_stack, tmp_path):
    path = tmp_path / "stack.tif"
    shutil.copy(nc_stack, path)
    with rasterio.open(path) as ds:
        before = ds.read()
    source = RasterioSource(path)
    source.tile_cache = SharedTileCache(64 << 20)
    _forked(_read_in_child, source, WINDOWS[:2])
    # The file changes under the cache: tiles the child decoded come back as they
    # were, tiles nobody decoded yet are read from the file as it is now.
    with rasterio.open(path, "r+") as ds:
        ds.write(before + 1)
    child_tiles = Window(0, 0, 256, 256)  # the top-left tile: both windows touched it
    np.testing.assert_array_equal(source.read(child_tiles).data, before[:, :256, :256])
    fresh = Window(300, 300, 100, 100)  # the bottom-right tile: nobody read it
    np.testing.assert_array_equal(source.read(fresh).data, before[:, 300:400, 300:400] + 1)


def test_clear_forgets_the_tiles_of_every_process(nc_stack):
    cache = SharedTileCache(8 << 20)
    key, shape = TileKey(source=1, tile=0), (1, 256, 256)
    decodes = []

    def decode(into):
        decodes.append(1)
        into[...] = 7

    out = np.zeros(shape, np.float32)
    assert cache.copy_tile(key, shape, np.float32, (slice(None),), out, decode)
    assert not cache.copy_tile(key, shape, np.float32, (slice(None),), out, decode)
    _forked(cache.clear)
    out[...] = 0
    assert cache.copy_tile(key, shape, np.float32, (slice(None),), out, decode)
    assert len(decodes) == 2 and (out == 7).all()


class _Holder:
    """Something that holds a cache (a dataset does)."""


def _fill(cache, value=7):
    """Decode one tile of ``value`` into ``cache``; whether it was decoded."""
    shape = (1, 256, 256)

    def decode(into):
        into[...] = value

    out = np.zeros(shape, np.float32)
    return cache.copy_tile(TileKey(source=1, tile=0), shape, np.float32, (), out, decode)


def _collect(cache):
    gc.collect()
    if cache._freeing is not None:
        cache._freeing.join(10)


def test_the_last_holder_collected_frees_the_tiles():
    cache = SharedTileCache(8 << 20)
    first, second = _Holder(), _Holder()
    cache.hold(first)
    cache.hold(second)
    assert _fill(cache)
    tile_bytes = cache._ring[: 256 * 256 * 4]
    del first
    _collect(cache)
    assert len(cache) == 1 and not _fill(cache)  # another holder lives: kept
    del second
    _collect(cache)
    assert len(cache) == 0
    assert not tile_bytes.any()  # the pages were given back: they read as fresh zeros
    assert _fill(cache)  # and the cache works on


def test_a_holder_collected_in_a_forked_process_frees_nothing():
    cache = SharedTileCache(8 << 20)
    holders = [_Holder()]
    cache.hold(holders[0])
    assert _fill(cache)

    def drop_the_copy():
        holders.clear()
        _collect(cache)

    _forked(drop_the_copy)
    assert len(cache) == 1 and not _fill(cache)


def test_pickled_sources_read_without_the_cache(nc_stack):
    import pickle

    source = RasterioSource(nc_stack)
    source.tile_cache = SharedTileCache(8 << 20)
    copy = pickle.loads(pickle.dumps(source))
    assert copy.tile_cache is None
    np.testing.assert_array_equal(copy.read(WINDOWS[2]).data, source.read(WINDOWS[2]).data)


def test_cache_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "12.5")
    assert tile_cache_bytes() == int(12.5 * 2**20)
    for bad in ("a lot", "-5", "nan", "inf"):
        monkeypatch.setenv(CACHE_ENV, bad)
        with pytest.raises(ConfigError, match=f"{CACHE_ENV}='{bad}' is not a size.*in MiB"):
            tile_cache_bytes()
    monkeypatch.setenv(CACHE_ENV, "0")
    assert tile_cache_bytes() == 0
    monkeypatch.delenv(CACHE_ENV)
    assert tile_cache_bytes() > 0
    with pytest.raises(ValueError, match="capacity above 0"):
        SharedTileCache(0)


def test_a_writer_lapped_while_decoding_does_not_overwrite_newer_tiles():
    # Room for four tiles; a slow decode of tile A while four others are kept.
    shape, index = (1, 256, 256), (slice(None),)
    cache = SharedTileCache(4 * 256 * 256 * 4)
    release, decoding = threading.Event(), threading.Event()

    def slow_a(into):
        decoding.set()
        assert release.wait(10)
        into[...] = -1

    def tile(value):
        def decode(into):
            into[...] = value

        return decode

    a_out = np.zeros(shape, np.float32)
    slow = threading.Thread(
        target=cache.copy_tile, args=(TileKey(1, 99), shape, np.float32, index, a_out, slow_a)
    )
    slow.start()
    assert decoding.wait(10)
    out = np.zeros(shape, np.float32)
    for value in range(4):
        assert cache.copy_tile(TileKey(1, value), shape, np.float32, index, out, tile(value))
    release.set()
    slow.join(10)
    assert (a_out == -1).all()
    # Every tile still held reads back as itself, whatever the slow decode wrote.
    for value in [*range(4), 99]:
        found = cache.copy_tile(TileKey(1, value), shape, np.float32, index, out, tile(-2))
        assert (out == (-2 if found else (-1 if value == 99 else value))).all(), value


def test_a_cache_that_cannot_be_mapped_warns_and_reads_go_without(monkeypatch):
    monkeypatch.setattr(shared_tiles, "_cache", None)
    monkeypatch.setattr(shared_tiles, "_cache_failed", False)
    monkeypatch.setenv(CACHE_ENV, str(2**28))  # 256 TiB: more than a process can map
    with pytest.warns(GeoxrWarning, match=f"could not map .* Set {CACHE_ENV} to a smaller size"):
        assert shared_tiles.shared_tile_cache() is None
    assert shared_tiles.shared_tile_cache() is None  # tried once, not on every dataset


def test_every_tile_of_two_sources_finds_its_own_index_entry():
    # Ids and a bucket count for which Python's tuple hash put one tile in ten of these
    # sources into another's bucket: those tiles were decoded again on every read.
    sources, buckets = [69779450361524315, 1131873935418489735], 77137
    cache = SharedTileCache(1 << 20, buckets=buckets)
    shape, index, out = (1, 1, 1), (slice(None),), np.zeros((1, 1, 1), np.uint8)

    def decode(into):
        into[...] = 1

    keys = [TileKey(s, t) for s in sources for t in range(1600)]
    assert all(cache.copy_tile(k, shape, np.uint8, index, out, decode) for k in keys)
    decoded_again = [k for k in keys if cache.copy_tile(k, shape, np.uint8, index, out, decode)]
    assert decoded_again == [] and len(cache) == len(keys)


def _resident_pages(array: np.ndarray) -> np.ndarray:
    """Whether each page of ``array`` is mapped in this process (``/proc/self/pagemap``)."""
    page = shared_tiles.mmap.PAGESIZE
    address = array.__array_interface__["data"][0]
    first, end = address // page, -(-(address + array.nbytes) // page)
    try:
        with open("/proc/self/pagemap", "rb") as pagemap:
            pagemap.seek(first * 8)
            entries = np.frombuffer(pagemap.read((end - first) * 8), np.uint64)
    except OSError:
        pytest.skip("no readable /proc/self/pagemap")
    return (entries >> np.uint64(63)).astype(bool)


def _kernel_populates() -> bool:
    """Whether this kernel maps pages on ``MADV_POPULATE_WRITE`` (Linux 5.14 or later)."""
    if shared_tiles._POPULATE_WRITE is None:
        return False
    probe = shared_tiles.mmap.mmap(-1, shared_tiles.mmap.PAGESIZE)
    try:
        probe.madvise(shared_tiles._POPULATE_WRITE)
    except OSError:
        return False
    finally:
        probe.close()
    return True


@pytest.mark.skipif(not _kernel_populates(), reason="needs MADV_POPULATE_WRITE (Linux 5.14+)")
def test_a_kept_tile_has_its_pages_mapped_in_one_call_before_the_copy(monkeypatch):
    page = shared_tiles.mmap.PAGESIZE
    cache = SharedTileCache(64 << 20)
    start, nbytes = page + 100, 1 << 20  # from inside a page: that page too
    pages = slice(1, -(-(start + nbytes) // page))
    assert not _resident_pages(cache._ring)[pages].any()
    cache._map_pages(start, nbytes)
    assert _resident_pages(cache._ring)[pages].all()
    # A tile kept is mapped in before it is copied, where the ring keeps it.
    calls = []
    monkeypatch.setattr(cache, "_map_pages", lambda *args: calls.append(args))
    out = np.zeros((1, 512, 512), np.float32)
    decode = functools.partial(np.copyto, src=np.float32(3))
    assert cache.copy_tile(TileKey(1, 1), out.shape, np.float32, (), out, decode)
    assert calls == [(0, out.nbytes)]


def test_a_kernel_without_populate_keeps_tiles_all_the_same():
    cache = SharedTileCache(8 << 20)
    cache._populate_write = 0x7FFF  # advice no kernel knows: EINVAL, as from a kernel before 5.14
    assert _fill(cache, value=3)
    assert cache._populate_write is None  # not asked again
    out = np.zeros((1, 256, 256), np.float32)

    def decode(into):
        pytest.fail("a kept tile was decoded again")

    assert not cache.copy_tile(TileKey(1, 0), out.shape, np.float32, (), out, decode)
    assert (out == 3).all()


@pytest.mark.skipif(not hasattr(shared_tiles.mmap, "MADV_REMOVE"), reason="Linux only")
def test_clear_frees_the_memory_unless_asked_to_keep_it_for_the_next_tiles():
    cache = SharedTileCache(8 << 20)
    tile_pages = -(-256 * 256 * 4 // shared_tiles.mmap.PAGESIZE)  # a (1, 256, 256) float32 tile
    assert _fill(cache)
    kept = _resident_pages(cache._ring)
    assert kept[:tile_pages].all()
    cache.clear(free_memory=False)
    assert len(cache) == 0 and (_resident_pages(cache._ring) == kept).all()
    # The next tile goes where the last one was, into pages already there.
    assert _fill(cache, value=5)
    assert (_resident_pages(cache._ring) == kept).all()
    cache.clear()
    assert len(cache) == 0 and not _resident_pages(cache._ring).any()
