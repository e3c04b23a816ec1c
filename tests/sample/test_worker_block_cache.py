"""DataLoader workers reading windows that share no tiles keep GDAL's block cache small."""

from __future__ import annotations

import pytest
from rasterio.env import get_gdal_config, set_gdal_config
from torch.utils.data import DataLoader

from geoxr import Scene, SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.read import RasterioSource
from geoxr.read._gdal import READ_ONCE_CACHE_BYTES, mosaic_vrt


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


@pytest.fixture
def gdal_cache_of_256_mib(monkeypatch):
    """GDAL's block cache at 256 MiB for the test (earlier predictions may have capped it)."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = int(get_gdal_config("GDAL_CACHEMAX"))
    set_gdal_config("GDAL_CACHEMAX", 256 * 2**20)
    yield 256 * 2**20
    set_gdal_config("GDAL_CACHEMAX", before)


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
