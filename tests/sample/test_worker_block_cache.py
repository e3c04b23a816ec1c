"""DataLoader workers: GDAL's block cache where windows share no tiles, the shared tile cache where they do."""

from __future__ import annotations

import copy
import gc
import pickle

import rasterio
from rasterio.env import get_gdal_config
from torch.utils.data import DataLoader, get_worker_info

import geoxr.read._shared_tiles as shared_tiles
from geoxr import (
    Scene,
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
    make_ss_scene,
)
from geoxr.read import RasterioSource
from geoxr.read._gdal import READ_ONCE_CACHE_BYTES, TILE_DECODE_CACHE_BYTES, mosaic_vrt
from geoxr.read._shared_tiles import SharedTileCache, shared_tile_cache


def _cache_max_in_worker(items):
    """A collate function: GDAL's block cache size in the worker that read the batch."""
    return int(get_gdal_config("GDAL_CACHEMAX"))


def _cache_sizes(dataset, workers):
    loader = DataLoader(
        dataset,
        batch_size=2,
        num_workers=workers,
        timeout=20 if workers else 0,
        collate_fn=_cache_max_in_worker,
    )
    return set(loader)


def _windows(scene, size, stride):
    return SemanticSegmentationSlidingWindowGeoDataset(scene, size=size, stride=stride)


def test_workers_cap_the_cache_only_where_each_tile_is_read_once(nc_stack, gdal_cache_of_256_mib):
    default = gdal_cache_of_256_mib
    image_only = Scene("nc", RasterioSource(nc_stack))
    # The stack's tiles are 256 x 256: these windows are its tiles, each read once.
    apart = _windows(image_only, 256, 256)
    assert apart._tiles_read_once
    assert _cache_sizes(apart, 1) == {READ_ONCE_CACHE_BYTES}
    # Tiles read again, by windows that overlap or lie within one tile: worth caching.
    for size, stride in [(256, 128), (128, 128)]:
        sharing = _windows(image_only, size, stride)
        assert not sharing._tiles_read_once
        assert _cache_sizes(sharing, 1) == {default}
    assert _cache_sizes(apart, 0) == {default}  # the main process is the user's: left alone
    assert int(get_gdal_config("GDAL_CACHEMAX")) == default


def test_tiles_of_the_label_raster_or_unknown_tiles_keep_the_cache(
    nc_stack, nc_strata, nc_class_config, tmp_path, gdal_cache_of_256_mib
):
    # Labels in strips four rows high: windows side by side read the same strips.
    labelled = make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    # A VRT's blocks are not the tiles of the file it reads: they are not known.
    vrt = tmp_path / "stack.vrt"
    vrt.write_text(mosaic_vrt([str(nc_stack)]))
    for scene in (labelled, Scene("vrt", RasterioSource(vrt))):
        dataset = _windows(scene, 256, 256)
        assert not dataset._tiles_read_once
        assert _cache_sizes(dataset, 1) == {gdal_cache_of_256_mib}


def test_a_cache_size_the_user_set_is_kept(nc_stack, monkeypatch, gdal_cache_of_256_mib):
    monkeypatch.setenv("GDAL_CACHEMAX", "256")  # as GDAL read it, in MB: the fixture's size
    apart = _windows(Scene("nc", RasterioSource(nc_stack)), 256, 256)
    assert apart._tiles_read_once
    assert _cache_sizes(apart, 1) == {gdal_cache_of_256_mib}


def _tile_cache_in_worker(items):
    """A collate function: whether the worker reads through the shared cache, and GDAL's cache."""
    dataset = get_worker_info().dataset
    shared = dataset.scene.raster_source.tile_cache is not None
    return shared, int(get_gdal_config("GDAL_CACHEMAX"))


def test_several_workers_share_the_tiles_random_windows_read(
    nc_stack, nc_strata, nc_class_config, gdal_cache_of_256_mib
):
    scene = make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    dataset = SemanticSegmentationRandomWindowGeoDataset(
        scene, size_lims=(64, 65), max_windows=24, seed=3
    )
    cache = shared_tile_cache()
    cache.clear()

    def loader(workers):
        timeout = 20 if workers else 0
        return DataLoader(
            dataset, 4, num_workers=workers, timeout=timeout, collate_fn=_tile_cache_in_worker
        )

    # The workers decode into the cache of the main process, which forked them; GDAL's
    # own cache only needs room for the tiles being decoded.
    assert set(loader(2)) == {(True, TILE_DECODE_CACHE_BYTES)}
    held = len(cache)
    assert held > 0
    # Item by item (no batches), workers are set up all the same.
    cache.clear()
    unbatched = DataLoader(
        dataset, batch_size=None, num_workers=2, timeout=20, collate_fn=_tile_cache_in_worker
    )
    assert set(unbatched) == {(True, TILE_DECODE_CACHE_BYTES)}
    assert len(cache) > 0
    # One worker has nobody to share with; the main process reads as it always did.
    assert set(loader(1)) == {(False, gdal_cache_of_256_mib)}
    assert len(list(DataLoader(dataset, 4))) == 6
    assert scene.raster_source.tile_cache is None and len(cache) == held
    assert int(get_gdal_config("GDAL_CACHEMAX")) == gdal_cache_of_256_mib


def test_the_shared_tiles_are_freed_with_the_last_dataset_a_copy_included(
    nc_stack, nc_strata, nc_class_config, monkeypatch
):
    cache = SharedTileCache(64 << 20)
    monkeypatch.setattr(shared_tiles, "_cache", cache)  # held by this test's datasets alone
    scene = make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    dataset = SemanticSegmentationRandomWindowGeoDataset(
        scene, size_lims=(64, 65), max_windows=24, seed=3
    )
    copied = copy.copy(dataset)
    loader = DataLoader(copied, 4, num_workers=2, timeout=20, collate_fn=_tile_cache_in_worker)
    assert set(loader) == {(True, TILE_DECODE_CACHE_BYTES)}
    assert len(cache) > 0
    del dataset
    cache._freeing.join(10)
    assert len(cache) > 0  # the copy still reads through the cache: its tiles stay
    del copied, loader
    gc.collect()
    cache._freeing.join(10)
    assert len(cache) == 0


def test_a_dataset_unpickled_in_a_fresh_main_process_makes_the_shared_cache(
    nc_stack, nc_strata, nc_class_config, monkeypatch
):
    scene = make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    pickled = pickle.dumps(
        SemanticSegmentationRandomWindowGeoDataset(
            scene, size_lims=(64, 65), max_windows=24, seed=3
        )
    )
    # As in a process that made no cache yet: a saved dataset loaded by a new program.
    monkeypatch.setattr(shared_tiles, "_cache", None)
    monkeypatch.setenv(shared_tiles.CACHE_ENV, "64")
    dataset = pickle.loads(pickled)
    cache = shared_tiles.made_tile_cache()
    assert cache is not None and cache.capacity == 64 << 20
    loader = DataLoader(dataset, 4, num_workers=2, timeout=20, collate_fn=_tile_cache_in_worker)
    assert set(loader) == {(True, TILE_DECODE_CACHE_BYTES)}
    assert len(cache) > 0


def test_workers_reading_large_tiles_through_the_shared_cache_keep_room_for_two(
    nc_stack, tmp_path, gdal_cache_of_256_mib
):
    # The stack (6 float32 bands) written again in 512 px tiles: 6 MiB a tile.
    retiled = tmp_path / "stack_512.tif"
    with rasterio.open(nc_stack) as src:
        profile = src.profile | {"tiled": True, "blockxsize": 512, "blockysize": 512}
        with rasterio.open(retiled, "w", **profile) as dst:
            dst.write(src.read())
    source = RasterioSource(retiled)
    assert source.decoded_tile_bytes == 512 * 512 * 6 * 4
    dataset = SemanticSegmentationRandomWindowGeoDataset(
        Scene("nc", source), size_lims=(64, 65), max_windows=16, seed=3
    )
    loader = DataLoader(dataset, 4, num_workers=2, timeout=20, collate_fn=_tile_cache_in_worker)
    assert set(loader) == {(True, 2 * 512 * 512 * 6 * 4)}
    assert int(get_gdal_config("GDAL_CACHEMAX")) == gdal_cache_of_256_mib
