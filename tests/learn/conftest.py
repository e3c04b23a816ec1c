import numpy as np
import pytest
import torch

import geoxr


@pytest.fixture(scope="session")
def nc_scenes(nc_stack, nc_strata, nc_class_config):
    """West and east halves of the NC Landsat scene, labelled by the land-cover raster."""

    def half(bbox):
        return geoxr.make_ss_scene(
            nc_stack,
            label_raster_uri=nc_strata,
            class_config=nc_class_config,
            image_raster_source_kw={"bbox": bbox},
        )

    return half((0, 0, 443, 244)), half((0, 244, 443, 489))


@pytest.fixture(scope="session")
def nc_datasets(nc_scenes):
    west, east = nc_scenes
    train = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        west, size=64, stride=32, normalize="stats"
    )
    valid = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        east, size=64, stride=64, normalize=train.normalize
    )
    return train, valid


@pytest.fixture
def small_cfg(nc_class_config):
    """Factory of small learner configs for the NC scene; keyword arguments go to the solver."""

    def make(**solver):
        return geoxr.SemanticSegmentationLearnerConfig(
            class_config=nc_class_config,
            in_channels=6,
            model=geoxr.ModelConfig(width=8, depth=2),
            solver=geoxr.SolverConfig(**{"batch_size": 8, "num_epochs": 1, **solver}),
        )

    return make


@pytest.fixture
def batch():
    """A fixed normalised batch (2, 6, 40, 40)."""
    return torch.from_numpy(
        np.random.default_rng(0).standard_normal((2, 6, 40, 40)).astype(np.float32)
    )
