"""Fixtures shared by the tests: where the real data lives and the scenes used from it.

The data are the small real rasters and vectors in ``shared/data`` (see its README).
They are read in place, never copied. ``GEOXR_DATA`` points elsewhere; without the
data the tests that need it are skipped, except under CI (``CI=true``) where they fail.
"""

import os
from pathlib import Path

import pytest
from rasterio.env import get_gdal_config, set_gdal_config

import geoxr

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

NC_CLASS_NAMES = [
    "null",
    "developed",
    "agriculture",
    "herbaceous",
    "shrubland",
    "forest",
    "water",
    "sediment",
]


def _missing(what: str) -> None:
    message = (
        f"{what} not found. Point GEOXR_DATA at the shared real data folder "
        f"(default {DEFAULT_DATA}); see shared/data/README.md."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("GEOXR_DATA", DEFAULT_DATA))
    if not path.is_dir():
        _missing(f"Test data folder {str(path)!r}")
    return path


def _data_file(data_dir: Path, relative: str) -> Path:
    path = data_dir / relative
    if not path.is_file():
        _missing(f"Test data file {str(path)!r}")
    return path


@pytest.fixture(scope="session")
def nc_stack(data_dir: Path) -> Path:
    """NC Landsat 7 stack: 489 x 443 x 6 float32, nodata -99999 per band, EPSG:32119."""
    return _data_file(data_dir, "nc_landsat7_raleigh/lsat7_2000_stack.tif")


@pytest.fixture(scope="session")
def nc_strata(data_dir: Path) -> Path:
    """NC land-cover label raster on the stack's pixel grid, EPSG:3358."""
    return _data_file(data_dir, "nc_landsat7_raleigh/landclass96_strata.tif")


@pytest.fixture(scope="session")
def nc_labelled_pixels(data_dir: Path) -> Path:
    """Sparse NC label raster: the polygons rasterised (2,872 pixels), -99999 elsewhere."""
    return _data_file(data_dir, "nc_landsat7_raleigh/landsat96_labelled_pixels.tif")


@pytest.fixture(scope="session")
def nc_polygons(data_dir: Path) -> Path:
    """34 NC training polygons, EPSG:3358, class id in column ``id``."""
    path = _data_file(data_dir, "nc_landsat7_raleigh/landsat96_polygons.shp")
    for ext in (".shx", ".dbf", ".prj"):
        _data_file(data_dir, f"nc_landsat7_raleigh/landsat96_polygons{ext}")
    return path


@pytest.fixture(scope="session")
def sn4_image(data_dir: Path) -> Path:
    """SpaceNet 4 Atlanta pan chip: 900 x 900 uint16, nodata 0, EPSG:32616."""
    return _data_file(data_dir, "spacenet4_atlanta/sn4_atlanta_pan.tif")


@pytest.fixture(scope="session")
def sn4_buildings(data_dir: Path) -> Path:
    """43 building polygons in a GeoJSON with a legacy ``crs`` member (EPSG:32616)."""
    return _data_file(data_dir, "spacenet4_atlanta/sn4_atlanta_buildings.geojson")


@pytest.fixture(scope="session")
def rgb_byte(data_dir: Path) -> Path:
    """rasterio's RGB.byte.tif: 791 x 718 x 3 uint8, nodata 0, EPSG:32618, striped."""
    return _data_file(data_dir, "rasterio_rgb_byte/RGB.byte.tif")


@pytest.fixture(scope="session")
def nc_class_config() -> geoxr.ClassConfig:
    """The NC land-cover classes, id = position; 0 is the null class."""
    return geoxr.ClassConfig(NC_CLASS_NAMES, null_class="null")


# --------------------------------------------------------------------- prediction
def _bundle(path: Path, class_config: geoxr.ClassConfig, in_channels: int, stats) -> Path:
    """An untrained (seeded) small U-Net bundle: deterministic, enough to test plumbing."""
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=class_config,
        in_channels=in_channels,
        model=geoxr.ModelConfig(width=4, depth=2),
        norm_stats=stats,
    )
    learner = geoxr.SemanticSegmentationLearner(
        cfg, output_dir=path.parent, progress=False, seed=3
    )
    return learner.save_model_bundle(path)


@pytest.fixture(scope="session")
def nc_bundle(tmp_path_factory, nc_stack, nc_class_config) -> Path:
    source = geoxr.RasterioSource(nc_stack)
    stats = geoxr.compute_band_stats(source.data)
    return _bundle(tmp_path_factory.mktemp("nc") / "model-bundle.zip", nc_class_config, 6, stats)


@pytest.fixture(scope="session")
def atlanta_bundle(tmp_path_factory, sn4_image) -> Path:
    source = geoxr.RasterioSource(sn4_image)
    stats = geoxr.compute_band_stats(source.data)
    cc = geoxr.ClassConfig(["background", "building"])
    return _bundle(tmp_path_factory.mktemp("atl") / "model-bundle.zip", cc, 1, stats)


@pytest.fixture(scope="session")
def nc_points(data_dir: Path) -> Path:
    """NC land-cover points: 1000 Points, EPSG:3358, columns id and label."""
    return _data_file(data_dir, "nc_landsat7_raleigh/landsat96_points.shp")


@pytest.fixture
def gdal_cache_of_256_mib(monkeypatch):
    """GDAL's block cache at 256 MiB, as a user may set it (above geoxr's 64 MiB cap).

    ``GDAL_CACHEMAX`` is out of the environment (where set, geoxr leaves the cache
    alone), and the size the process had comes back after the test.
    """
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = int(get_gdal_config("GDAL_CACHEMAX"))
    set_gdal_config("GDAL_CACHEMAX", 256 * 2**20)
    yield 256 * 2**20
    set_gdal_config("GDAL_CACHEMAX", before)
