"""Train the built-in temporal model on the NAIP 2009/2020 pair with a water-change target."""

import numpy as np
import pytest
import rasterio
import torch

import geoxr


@pytest.fixture(scope="module")
def naip_change_scene(data_dir, tmp_path_factory):
    d = data_dir / "naip_timeseries_nd"
    paths = [d / "m_4709963_se_14_1_20090818.tif", d / "m_4709963_se_14_1_20200831.tif"]
    series = geoxr.TemporalMultiRasterSource(
        [geoxr.RasterioSource(p) for p in paths], times=["2009-08-18", "2020-08-31"]
    )
    values = series.data.values.astype(np.float32)  # (time, band, y, x): 5 MB
    green, nir = values[:, 1], values[:, 3]
    water = (green - nir) / np.maximum(green + nir, 1) > 0  # NDWI > 0
    change = (water[0] != water[1]).astype(np.uint8)
    path = tmp_path_factory.mktemp("naip") / "water-change.tif"
    with rasterio.open(paths[0]) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint8", "nodata": None}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(change[None])
    class_config = geoxr.ClassConfig(["same", "changed"])
    labels = geoxr.SemanticSegmentationLabelSource(geoxr.RasterioSource(path), class_config)
    return geoxr.Scene("naip-change", series, labels), change


def test_temporal_model_trains_saves_and_predicts(tmp_path, naip_change_scene):
    scene, change = naip_change_scene
    assert 0.005 < change.mean() < 0.5  # the pond and wetland edges moved
    ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        scene, size=64, stride=64, normalize="stats"
    )
    image, mask = ds[0]
    assert image.shape == (2, 4, 64, 64) and mask.shape == (64, 64)
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=scene.class_config,
        in_channels=4,
        model=geoxr.ModelConfig(
            name="temporal_unet", width=8, depth=2, temporal_pooling="attention"
        ),
        solver=geoxr.SolverConfig(lr=3e-3, num_epochs=2, batch_size=8),
    )
    subset = geoxr.GeoDataset(scene, ds.windows[::4], normalize=ds.normalize)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, valid_ds=subset, output_dir=tmp_path, progress=False
    )
    history = learner.train()
    assert len(history) == 2 and history[1]["train_loss"] < history[0]["train_loss"]
    assert np.isfinite(history[-1]["miou"])

    bundle = learner.save_model_bundle()
    loaded = geoxr.SemanticSegmentationLearner.from_model_bundle(
        bundle, output_dir=tmp_path / "re"
    )
    assert loaded.cfg.model.name == "temporal_unet"
    x = torch.stack([subset[i][0] for i in range(3)])
    assert torch.equal(loaded.predict(x), learner.predict(x))

    labels = geoxr.predict_scene(bundle, scene.raster_source, chip_size=128, stride=128)
    assert labels.scores.shape == (3, 724, 934)
    assert labels.scores.rio.transform() == scene.grid.transform
    window = geoxr.Window(128, 256, 128, 128)
    chip = geoxr.GeoDataset(scene, [window], normalize=ds.normalize)[0][0][None]
    np.testing.assert_allclose(
        labels.scores.isel(y=slice(128, 256), x=slice(256, 384)).values,
        loaded.predict(chip)[0].numpy(),
        atol=1e-5,
    )
    # A temporal model on one date, a single-date model on the series: raw torch errors
    # at compute time (or in the first batch) before.
    one_date = scene.raster_source.sources[0]
    with pytest.raises(geoxr.ConfigError, match=r"single-date chips .* 'temporal_unet' takes"):
        geoxr.predict_scene(bundle, one_date, chip_size=128)
    single = cfg.replace(model=geoxr.ModelConfig(name="unet", width=8, depth=2))
    with pytest.raises(geoxr.ConfigError, match=r"scene 'naip-change' gives time series"):
        geoxr.SemanticSegmentationLearner(
            single, train_ds=subset, output_dir=tmp_path / "single", progress=False
        )
