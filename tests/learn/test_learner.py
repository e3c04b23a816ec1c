import json
import pickle

import numpy as np
import pytest
import torch

import geoxr


def majority_baseline_miou(scene):
    """mIoU of predicting the most frequent class everywhere (over classes present)."""
    ids = scene.label_source.data.values
    ids = ids[ids != scene.label_source.null_class_id]
    _, counts = np.unique(ids, return_counts=True)
    return (counts.max() / counts.sum()) / len(counts)


def test_training_beats_majority_baseline_east_of_west(
    tmp_path, nc_class_config, nc_scenes, nc_datasets, small_cfg
):
    """Train on the west half, validate on the east half of the NC Landsat scene."""
    train, valid = nc_datasets
    cfg = small_cfg(lr=3e-3, num_epochs=6, lr_schedule="onecycle")
    cfg = cfg.replace(model=geoxr.ModelConfig(width=16, depth=2))
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=train, valid_ds=valid, output_dir=tmp_path, progress=False
    )
    history = learner.train()
    baseline = majority_baseline_miou(nc_scenes[1])
    last = history[-1]
    print(
        f"valid mIoU {last['miou']:.3f} acc {last['accuracy']:.3f}; majority mIoU {baseline:.3f}"
    )
    assert len(history) == 6
    assert last["miou"] > 2 * baseline
    assert last["valid_loss"] < history[0]["valid_loss"]
    assert set(last["per_class"]) == set(nc_class_config.names) - {"null"}
    saved = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in saved] == [1, 2, 3, 4, 5, 6]
    state = torch.load(tmp_path / "last-model.pth", weights_only=True)
    assert set(state) == set(learner.model.state_dict())


def test_resume_from_checkpoint_continues_the_same_run(
    tmp_path, nc_class_config, nc_datasets, small_cfg
):
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:16], normalize=train.normalize)
    cfg = small_cfg(num_epochs=2, lr_schedule="cosine")

    straight = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "a", progress=False
    )
    straight.train(2)

    first = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "b", progress=False
    )
    first.train(1)
    resumed = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "b", progress=False
    )
    assert resumed.epoch == 1 and len(resumed.history) == 1
    resumed.train(2)
    assert resumed.epoch == 2
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(
        straight.optimizer.param_groups[0]["lr"]
    )


def test_class_weights_and_sgd(tmp_path, nc_class_config, nc_datasets, small_cfg):
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    weights = tuple([0.0] + [1.0] * 7)
    cfg = small_cfg(optimizer="sgd", lr=0.01, class_weights=weights, lr_schedule="step")
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path, progress=False
    )
    history = learner.train(1)
    assert np.isfinite(history[0]["train_loss"])
    assert isinstance(learner.optimizer, torch.optim.SGD)


def test_a_trained_learner_pickles(tmp_path, nc_datasets, small_cfg):
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), train_ds=subset, output_dir=tmp_path, progress=False
    )
    assert learner.cfg.solver.lr_schedule == "constant"
    learner.train(1)  # builds the optimizer and the schedule
    clone = pickle.loads(pickle.dumps(learner))
    image = subset[0].image[None]
    torch.testing.assert_close(clone.predict(image), learner.predict(image))


def test_predict_dataset_yields_window_scores(tmp_path, nc_class_config, nc_datasets, small_cfg):
    train, valid = nc_datasets
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), train_ds=train, output_dir=tmp_path, progress=False
    )
    subset = geoxr.GeoDataset(valid.scene, valid.windows[:5], normalize=valid.normalize)
    pairs = list(learner.predict_dataset(subset, batch_size=2))
    assert [w for w, _ in pairs] == subset.windows
    for _, scores in pairs:
        assert scores.shape == (8, 64, 64) and scores.dtype == np.float32
        np.testing.assert_allclose(scores.sum(axis=0), 1.0, rtol=1e-5)
    with pytest.warns(geoxr.GeoxrWarning, match="normalize=learner.cfg.norm_stats"):
        next(learner.predict_dataset(geoxr.GeoDataset(valid.scene, valid.windows[:1])))


def test_train_without_dataset_is_a_clear_error(tmp_path, nc_class_config, small_cfg):
    learner = geoxr.SemanticSegmentationLearner(small_cfg(), output_dir=tmp_path, progress=False)
    with pytest.raises(geoxr.ConfigError, match=r"no train_ds.*train_ds=\.\.\."):
        learner.train(1)
    with pytest.raises(geoxr.ConfigError, match=r"No dataset to validate on.*valid_ds=\.\.\."):
        learner.validate()


def test_a_model_with_another_class_count_is_a_clear_error(tmp_path, small_cfg, batch):
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), model=geoxr.UNet(6, 3, width=4, depth=1), output_dir=tmp_path, progress=False
    )
    with pytest.raises(
        geoxr.ClassConfigError, match=r"returned shape \(2, 3, 40, 40\).*\(N, 8, H, W\)"
    ):
        learner.predict(batch)
