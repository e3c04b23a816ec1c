"""DataLoader workers reading windows that share no tiles keep GDAL's block cache small."""

from __future__ import annotations

import pytest
from rasterio.env import get_gdal_config, set_gdal_config
from torch.utils.data import DataLoader

from geoxr import SemanticSegmentationSlidingWindowGeoDataset, make_ss_scene
from geoxr.read._gdal import READ_ONCE_CACHE_BYTES


def _cache_max_in_worker(items):
    """A collate function: GDAL's block cache size in the worker that read the batch."""
    return int(get_gdal_config("GDAL_CACHEMAX"))


@pytest.fixture(scope="module")
def nc_scene(nc_stack, nc_strata, nc_class_config):
    return make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)


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


def test_workers_cap_the_cache_only_where_each_tile_is_read_once(nc_scene, gdal_cache_of_256_mib):
    default = gdal_cache_of_256_mib
    # The stack's tiles are 256 x 256: these windows are its tiles, each read once.
    apart = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=256, stride=256)
    assert not apart._windows_share_tiles
    assert _cache_sizes(apart, 1) == {READ_ONCE_CACHE_BYTES}
    # Tiles read again, by windows that overlap or lie within one tile: worth caching.
    for size, stride in [(256, 128), (128, 128)]:
        sharing = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=size, stride=stride)
        assert sharing._windows_share_tiles
        assert _cache_sizes(sharing, 1) == {default}
    assert _cache_sizes(apart, 0) == {default}  # the main process is the user's: left alone
    assert int(get_gdal_config("GDAL_CACHEMAX")) == default


def test_a_cache_size_the_user_set_is_kept(nc_scene, monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "512")  # read by GDAL once, at its first use
    apart = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=256, stride=256)
    assert _cache_sizes(apart, 1) == {int(get_gdal_config("GDAL_CACHEMAX"))}
