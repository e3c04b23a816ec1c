import functools
import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset

import geoxr
import geoxr.learn.learner as learner_module


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


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "step"])
def test_resume_from_checkpoint_continues_the_same_run(
    tmp_path, nc_class_config, nc_datasets, small_cfg, schedule
):
    # A resumed onecycle run took its first step at the schedule's starting LR.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:16], normalize=train.normalize)
    cfg = small_cfg(num_epochs=2, lr_schedule=schedule, step_epochs=1)

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


def test_a_run_with_another_config_does_not_resume_a_checkpoint(tmp_path, nc_datasets, small_cfg):
    # Resumed, an SGD run got Adam's state (its LR, then KeyError: 'momentum'); a longer
    # onecycle run stepped past its schedule's end.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    off_scene = [geoxr.Window(-64, -64, 32, 32)]  # nothing labelled: metrics are NaN
    unlabelled = geoxr.GeoDataset(train.scene, off_scene, normalize=train.normalize)
    geoxr.SemanticSegmentationLearner(
        small_cfg(), train_ds=subset, valid_ds=unlabelled, output_dir=tmp_path, progress=False
    ).train(1)
    text = (tmp_path / "history.json").read_text()
    history = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}: not JSON"))
    assert history[0]["miou"] is None  # JSON has no NaN: it was written bare
    for changed, names in [
        ({"optimizer": "sgd", "lr": 0.5}, r"\['solver.lr', 'solver.optimizer'\] differ"),
        ({"num_epochs": 4, "lr_schedule": "onecycle"}, r"'solver.num_epochs'"),
    ]:
        with pytest.raises(geoxr.ConfigError, match=names + r".*resume=False"):
            geoxr.SemanticSegmentationLearner(
                small_cfg(**changed), train_ds=subset, output_dir=tmp_path, progress=False
            )
    fresh = geoxr.SemanticSegmentationLearner(
        small_cfg(optimizer="sgd"), output_dir=tmp_path, progress=False, resume=False
    )
    assert fresh.epoch == 0


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


class _AutocastConv(torch.nn.Conv2d):
    """A 1x1 convolution run under CPU autocast: its logits are bfloat16."""

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return super().forward(x)


def test_a_model_giving_bfloat16_logits_trains_and_validates_with_class_weights(
    tmp_path, nc_class_config, nc_datasets, small_cfg
):
    # The weighted loss raised "expected scalar type BFloat16 but found Float".
    train, valid = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    model = _AutocastConv(6, len(nc_class_config), 1)
    cfg = small_cfg(class_weights=tuple([0.5] + [1.0] * 7))
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=model, train_ds=subset, valid_ds=valid, output_dir=tmp_path, progress=False
    )
    before = model.weight.detach().clone()
    history = learner.train(1)
    assert np.isfinite(history[0]["train_loss"]) and np.isfinite(history[0]["valid_loss"])
    assert not torch.equal(model.weight, before) and model.weight.dtype == torch.float32
    x, _ = next(iter(DataLoader(valid, batch_size=2)))
    assert model(x).dtype == torch.bfloat16
    assert learner.predict(x).dtype == torch.float32


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
    nodata_pixels = 0
    for window, scores in pairs:
        assert scores.shape == (8, 64, 64) and scores.dtype == np.float32
        # NaN where the imagery is nodata, as predict_scene gives them
        invalid = valid.scene.raster_source.nodata_mask(window)
        np.testing.assert_array_equal(np.isnan(scores).any(axis=0), invalid)
        np.testing.assert_allclose(scores.sum(axis=0)[~invalid], 1.0, rtol=1e-5)
        nodata_pixels += int(invalid.sum())
    assert nodata_pixels > 0
    labels = geoxr.SemanticSegmentationLabels.from_predictions(
        [w for w, _ in pairs],
        [s for _, s in pairs],
        grid=valid.scene.grid,
        class_config=nc_class_config,
    )
    checked = 0
    for window, _ in pairs:
        if not valid.scene.grid.extent.contains(window):
            continue
        invalid = valid.scene.raster_source.nodata_mask(window)
        ids = labels.class_ids.isel(window.isel()).values
        assert (ids[invalid] == labels.null_class_id).all()
        checked += int(invalid.sum())
    assert checked > 0
    # Raster Vision's way: the windows, and what predict_dataset yields, as they come.
    direct = geoxr.SemanticSegmentationLabels.from_predictions(
        subset.windows,
        learner.predict_dataset(subset, batch_size=2),
        grid=valid.scene.grid,
        class_config=nc_class_config,
    )
    np.testing.assert_array_equal(direct.scores.values, labels.scores.values)
    with pytest.raises(geoxr.LabelsError, match=r"Prediction 0 is for .* but window 0 is"):
        geoxr.SemanticSegmentationLabels.from_predictions(
            subset.windows[::-1], pairs, grid=valid.scene.grid, class_config=nc_class_config
        )
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


def test_batches_whose_labelled_pixels_all_weigh_zero_are_skipped(
    tmp_path, nc_datasets, small_cfg, nc_class_config
):
    # Their weighted mean loss was 0 / 0: one such step turned every parameter into NaN.
    train, _ = nc_datasets
    null = nc_class_config.ignore_class_id
    small = geoxr.sliding_windows(train.scene.grid.shape, 16, 16)
    grid = geoxr.GeoDataset(train.scene, small, normalize=train.normalize)
    kinds = {}
    for i in range(len(grid)):
        y = grid[i].mask
        kinds[i] = set(torch.unique(y[y != null]).tolist())
    single = next(i for i, k in kinds.items() if len(k) == 1)
    (only,) = kinds[single]
    mixed = [i for i, k in kinds.items() if len(k - {only}) >= 2][:3]
    windows = [small[i] for i in [*mixed, single, *mixed]]
    subset = geoxr.GeoDataset(train.scene, windows, normalize=train.normalize)
    weights = tuple(0.0 if c == only else 1.0 for c in range(len(nc_class_config)))
    cfg = small_cfg(batch_size=1, class_weights=weights)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path, progress=False
    )
    learner._loader = lambda ds, shuffle: DataLoader(ds, batch_size=1, shuffle=False)
    history = learner.train(1)
    assert np.isfinite(history[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in learner.model.parameters())


def test_class_weights_are_one_per_class_of_the_config(tmp_path, batch):
    two = geoxr.ClassConfig(["a", "b"])  # no null class: the model outputs a third
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=two,
        in_channels=6,
        model=geoxr.ModelConfig(width=4, depth=1),
        solver=geoxr.SolverConfig(class_weights=(1, 2)),  # ints are weights too
    )
    learner = geoxr.SemanticSegmentationLearner(cfg, output_dir=tmp_path, progress=False)
    loss = learner._loss_fn()
    assert loss.weight.dtype == torch.float32 and loss.weight.tolist() == [1.0, 2.0, 0.0]
    wrong = cfg.replace(solver=geoxr.SolverConfig(class_weights=(1.0, 2.0, 3.0, 4.0)))
    learner = geoxr.SemanticSegmentationLearner(wrong, output_dir=tmp_path, progress=False)
    with pytest.raises(geoxr.ConfigError, match=r"4 weights for a class config of 2 classes"):
        learner._loss_fn()  # what train() and validate() build first


@pytest.mark.parametrize(
    ("solver", "match"),
    [
        ({"optimizer": "SGD"}, r"optimizer 'SGD' is not one of \('adamw', 'adam', 'sgd'\)"),
        ({"lr_schedule": "cosine_annealing"}, r"lr_schedule 'cosine_annealing' is not one of"),
        ({"batch_size": 0}, r"batch_size must be >= 1"),
        ({"class_weights": (1.0, -1.0)}, r"must be finite and >= 0"),
        ({"class_weights": (0.0, 0.0)}, r"some above 0"),
        ({"lr": -0.1}, r"got \{'lr': -0\.1\}"),
        ({"gamma": 0.0}, r"\(gamma > 0\), got \{'gamma': 0\.0\}"),
        ({"num_workers": -1}, r"num_workers must be >= 0"),
    ],
)
def test_solver_settings_geoxr_cannot_use_are_refused_before_training(
    tmp_path, nc_datasets, small_cfg, solver, match
):
    # A misspelt optimizer or schedule silently ran AdamW with a constant LR.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:2], normalize=train.normalize)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(**solver), train_ds=subset, output_dir=tmp_path, progress=False
    )
    with pytest.raises(geoxr.ConfigError, match=match):
        learner.train(1)
    assert not (tmp_path / "checkpoint.pt").exists()
    # A bundle with such settings still loads: they play no part in inference.
    learner.save_model_bundle(tmp_path / "b.zip")
    geoxr.SemanticSegmentationLearner.from_model_bundle(tmp_path / "b.zip")


def test_datasets_of_other_classes_bands_or_stats_are_caught(
    tmp_path, nc_datasets, small_cfg, nc_stack, nc_strata
):
    # Another class config trained its null pixels as a class; other bands were a raw
    # conv error; other stats went unnoticed, and the bundle kept the config's.
    train, _ = nc_datasets
    fewer = geoxr.ClassConfig(["null", "developed", "other"], null_class="null")
    scene = geoxr.make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=fewer)
    other_classes = geoxr.GeoDataset(scene, train.windows[:2], normalize=train.normalize)
    with pytest.raises(
        geoxr.ClassConfigError,
        match=r"train_ds's scene .* has the classes \['null', 'developed', 'other'\]",
    ):
        geoxr.SemanticSegmentationLearner(
            small_cfg(), train_ds=other_classes, output_dir=tmp_path, progress=False
        )
    four = geoxr.make_ss_scene(
        nc_stack,
        label_raster_uri=nc_strata,
        class_config=train.scene.label_source.class_config,
        image_raster_source_kw={"channel_order": [0, 1, 2, 3]},
    )
    with pytest.raises(geoxr.BandCountError, match=r"valid_ds's scene .* 4 bands, the model"):
        geoxr.SemanticSegmentationLearner(
            small_cfg(), valid_ds=geoxr.GeoDataset(four, []), output_dir=tmp_path, progress=False
        )
    stats = geoxr.BandStats((0.0,) * 6, (1.0,) * 6)
    cfg = small_cfg().replace(norm_stats=stats)
    with pytest.warns(geoxr.GeoxrWarning, match=r"train_ds is normalised with .*cfg.norm_stats"):
        geoxr.SemanticSegmentationLearner(cfg, train_ds=train, output_dir=tmp_path, progress=False)


def test_a_run_resumes_with_class_weights_and_without_its_train_ds(
    tmp_path, nc_datasets, small_cfg, nc_class_config
):
    # The checkpoint's config (JSON: lists) against the learner's (tuples), and norm_stats
    # that a learner gets from its train_ds, made it refuse its own checkpoint.
    train, valid = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    cfg = small_cfg(class_weights=(1.0,) * len(nc_class_config), num_workers=0)
    geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path, progress=False
    ).train(1)
    again = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path, progress=False
    )
    assert again.epoch == 1
    to_validate = geoxr.SemanticSegmentationLearner(
        cfg, valid_ds=valid, output_dir=tmp_path, progress=False
    )
    assert to_validate.epoch == 1 and to_validate.cfg.norm_stats == train.normalize
    more_workers = cfg.replace(solver=replace(cfg.solver, num_workers=2))
    assert (
        geoxr.SemanticSegmentationLearner(more_workers, output_dir=tmp_path, progress=False).epoch
        == 1
    )


def test_a_class_config_without_null_class_trains(tmp_path, nc_stack, nc_strata):
    # Its scene's label source adds the null class, as the learner's model does.
    names = ["nodata", "developed", "agriculture", "herbaceous", "shrubland", "forest"]
    classes = geoxr.ClassConfig([*names, "water", "sediment"])
    assert classes.null_class is None
    scene = geoxr.make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=classes)
    ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(scene, size=64, stride=64)
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=classes,
        in_channels=6,
        model=geoxr.ModelConfig(width=4, depth=1),
        solver=geoxr.SolverConfig(batch_size=8, num_epochs=1),
    )
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=geoxr.GeoDataset(scene, ds.windows[:8]), output_dir=tmp_path, progress=False
    )
    assert np.isfinite(learner.train(1)[0]["train_loss"])


def test_training_is_the_same_for_any_num_workers_and_forks_one_set_of_workers(
    tmp_path, nc_datasets, small_cfg, monkeypatch
):
    # tqdm.auto made an iterator of the loader of its own: a second set of workers,
    # and a draw from the shuffling generator that changed the batch order.
    train, valid = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:24], normalize=train.normalize)
    iterators = []
    real_iter = DataLoader.__iter__
    monkeypatch.setattr(
        DataLoader, "__iter__", lambda self: iterators.append(1) or real_iter(self)
    )
    states, history = [], []
    for workers in (0, 2):
        learner = geoxr.SemanticSegmentationLearner(
            small_cfg(num_workers=workers, batch_size=4),
            train_ds=subset,
            valid_ds=geoxr.GeoDataset(valid.scene, valid.windows[:8], normalize=train.normalize),
            output_dir=tmp_path / str(workers),
            progress=False,
        )
        iterators.clear()
        history.append(learner.train(1)[0])
        assert len(iterators) == 2  # one each for training and validation
        states.append(learner.model.state_dict())
    for name, value in states[0].items():
        torch.testing.assert_close(states[1][name], value, rtol=0, atol=0)
    assert history[0]["train_loss"] == history[1]["train_loss"]
    assert history[0]["valid_loss"] == history[1]["valid_loss"]


def test_validation_loss_with_class_weights_is_the_same_for_any_batch_size(
    tmp_path, nc_datasets, small_cfg, nc_class_config
):
    # Batches were averaged by their labelled pixels, not by their weights.
    train, valid = nc_datasets
    weights = tuple(float(c + 1) for c in range(len(nc_class_config)))
    subset = geoxr.GeoDataset(valid.scene, valid.windows[:8], normalize=train.normalize)
    losses = []
    for batch_size in (1, 3, 8):
        learner = geoxr.SemanticSegmentationLearner(
            small_cfg(class_weights=weights, batch_size=batch_size),
            output_dir=tmp_path,
            progress=False,
            resume=False,
        )
        losses.append(learner.validate(subset)["valid_loss"])
    assert losses[0] == pytest.approx(losses[2], rel=1e-6)
    assert losses[1] == pytest.approx(losses[2], rel=1e-6)


def test_onecycle_past_its_epochs_and_a_changed_custom_model_are_clear_errors(
    tmp_path, nc_datasets, small_cfg
):
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:4], normalize=train.normalize)
    cfg = small_cfg(lr_schedule="onecycle", num_epochs=1, batch_size=4)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "a", progress=False
    )
    with pytest.raises(geoxr.ConfigError, match=r"onecycle LR schedule spans num_epochs=1"):
        learner.train(2)  # torch's ValueError came mid-epoch, after unsaved steps
    assert learner.epoch == 0 and not (tmp_path / "a" / "checkpoint.pt").exists()
    model = torch.nn.Conv2d(6, 8, 3, padding=1)
    geoxr.SemanticSegmentationLearner(
        small_cfg(), model=model, train_ds=subset, output_dir=tmp_path / "b", progress=False
    ).train(1)
    with pytest.raises(
        geoxr.ConfigError, match=r"(?s)holds the weights of another model .*resume=False"
    ):
        geoxr.SemanticSegmentationLearner(
            small_cfg(),
            model=torch.nn.Conv2d(6, 8, 5, padding=2),
            train_ds=subset,
            output_dir=tmp_path / "b",
            progress=False,
        )


def test_an_epoch_without_a_learnable_batch_has_no_loss_and_history_survives_a_crash(
    tmp_path, nc_datasets, small_cfg, nc_class_config, monkeypatch
):
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:4], normalize=train.normalize)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(batch_size=4), train_ds=subset, output_dir=tmp_path, progress=False
    )
    monkeypatch.setattr(learner, "_loss_weight", lambda y, loss_fn: 0.0)
    assert np.isnan(learner.train(1)[0]["train_loss"])  # was 0.0, a perfect loss
    assert json.loads((tmp_path / "history.json").read_text())[0]["train_loss"] is None
    # A crash right after the checkpoint of epoch 2 was written kept no history of it.
    monkeypatch.undo()
    real_write = learner_module.write_atomically

    def write_then_crash(path, write):
        real_write(path, write)
        if path.name == "checkpoint.pt":
            raise KeyboardInterrupt

    monkeypatch.setattr(learner_module, "write_atomically", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        learner.train(2)
    monkeypatch.undo()
    resumed = geoxr.SemanticSegmentationLearner(
        small_cfg(batch_size=4), train_ds=subset, output_dir=tmp_path, progress=False
    )
    assert resumed.epoch == 2 and [r["epoch"] for r in resumed.history] == [1, 2]


def test_a_run_resumed_before_its_train_ds_is_given_keeps_its_lr_schedule(
    tmp_path, nc_datasets, small_cfg
):
    # The schedule was built afresh once train_ds was set: the LR started over.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    cfg = small_cfg(num_epochs=3, lr_schedule="cosine", batch_size=4)
    straight = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "a", progress=False
    )
    straight.train(2)
    geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "b", progress=False
    ).train(1)
    later = geoxr.SemanticSegmentationLearner(cfg, output_dir=tmp_path / "b", progress=False)
    later.train_ds = subset
    later.train(2)
    assert later.history[-1]["lr"] == pytest.approx(straight.history[-1]["lr"])


def test_several_scenes_train_through_concat_and_subset(tmp_path, nc_datasets, small_cfg):
    # A ConcatDataset (several scenes) or a Subset raised AttributeError: no 'normalize'.
    train, valid = nc_datasets
    west = geoxr.GeoDataset(train.scene, train.windows[:8], normalize=train.normalize)
    east = geoxr.GeoDataset(valid.scene, valid.windows[:8], normalize=train.normalize)
    both = ConcatDataset([west, Subset(east, range(4))])
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(batch_size=4), train_ds=both, output_dir=tmp_path, progress=False
    )
    assert learner.cfg.norm_stats == train.normalize  # taken from the scenes' datasets
    assert np.isfinite(learner.train(1)[0]["train_loss"])
    # Scenes normalised in different ways: the bundle could keep only one.
    raw = geoxr.GeoDataset(valid.scene, valid.windows[:8])
    with pytest.raises(geoxr.ConfigError, match=r"train_ds draws from datasets normalised in"):
        geoxr.SemanticSegmentationLearner(
            small_cfg(), train_ds=ConcatDataset([west, raw]), output_dir=tmp_path, progress=False
        )
    # Each scene inside is checked as a dataset given alone is.
    four = geoxr.make_ss_scene(
        train.scene.raster_source.uris[0],
        label_raster_uri=train.scene.label_source.raster_source.uris[0],
        class_config=train.scene.label_source.class_config,
        image_raster_source_kw={"channel_order": [0, 1, 2, 3]},
    )
    with pytest.raises(geoxr.BandCountError, match=r"train_ds's scene .* 4 bands, the model"):
        geoxr.SemanticSegmentationLearner(
            small_cfg().replace(norm_stats=train.normalize),
            train_ds=ConcatDataset([west, geoxr.GeoDataset(four, [])]),
            output_dir=tmp_path,
            progress=False,
        )


def test_a_scene_without_labels_is_refused_for_training_and_validation(
    tmp_path, nc_stack, nc_class_config, nc_datasets, small_cfg
):
    # Its masks are NaN: torch's loss raised "only batches of spatial targets supported".
    train, _ = nc_datasets
    unlabelled = geoxr.make_ss_scene(nc_stack, class_config=nc_class_config)
    ds = geoxr.GeoDataset(unlabelled, train.windows[:4], normalize=train.normalize)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), train_ds=ds, output_dir=tmp_path, progress=False
    )
    with pytest.raises(geoxr.LabelsError, match=r"train_ds's scene .* has no labels"):
        learner.train(1)
    with pytest.raises(geoxr.LabelsError, match=r"dataset's scene .* has no labels"):
        learner.validate(Subset(ds, range(2)))
    assert learner.predict_dataset(ds)  # predicting needs no labels


def test_a_damaged_checkpoint_or_history_names_the_file(tmp_path, nc_datasets, small_cfg):
    # A truncated checkpoint raised "OSError: [Errno 22] Invalid argument" (no file named),
    # a broken history.json a JSONDecodeError, from the learner's constructor.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:4], normalize=train.normalize)
    make = functools.partial(
        geoxr.SemanticSegmentationLearner,
        small_cfg(batch_size=4),
        train_ds=subset,
        output_dir=tmp_path,
        progress=False,
    )
    make().train(1)
    checkpoint = tmp_path / "checkpoint.pt"
    whole = checkpoint.read_bytes()
    checkpoint.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(geoxr.ConfigError, match=r"checkpoint\.pt' cannot be read .*resume=False"):
        make()
    checkpoint.write_bytes(whole)
    (tmp_path / "history.json").write_text("[{")
    with pytest.raises(geoxr.ConfigError, match=r"history\.json' is no JSON history"):
        make()


def test_the_history_lr_is_the_epochs_own_and_cosine_stops_at_its_end(
    tmp_path, nc_datasets, small_cfg
):
    # The LR after each epoch's last step was recorded (the next epoch's: step's epoch 1
    # showed lr * gamma); cosine trained past num_epochs climbed back to its peak LR.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:4], normalize=train.normalize)
    cfg = small_cfg(batch_size=4, lr=1.0, lr_schedule="step", step_epochs=1, num_epochs=2)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path / "step", progress=False
    )
    assert [r["lr"] for r in learner.train()] == pytest.approx([1.0, 0.1])
    cosine = small_cfg(batch_size=4, lr_schedule="cosine", num_epochs=2)
    learner = geoxr.SemanticSegmentationLearner(
        cosine, train_ds=subset, output_dir=tmp_path / "cosine", progress=False
    )
    with pytest.raises(geoxr.ConfigError, match=r"the cosine LR schedule spans num_epochs=2"):
        learner.train(3)


def test_devices_and_datasets_the_model_cannot_take_are_refused(
    tmp_path, nc_datasets, small_cfg, nc_stack, nc_strata
):
    # Raw RuntimeErrors from torch before: a device name it does not know, and a dataset
    # of other bands given to validate() or predict_dataset().
    with pytest.raises(geoxr.ConfigError, match=r"device 'gpu' is no torch device"):
        geoxr.SemanticSegmentationLearner(
            small_cfg(), output_dir=tmp_path, progress=False, device="gpu"
        )
    train, _ = nc_datasets
    learner = geoxr.SemanticSegmentationLearner(small_cfg(), output_dir=tmp_path, progress=False)
    four = geoxr.make_ss_scene(
        nc_stack,
        label_raster_uri=nc_strata,
        class_config=train.scene.label_source.class_config,
        image_raster_source_kw={"channel_order": [0, 1, 2, 3]},
    )
    ds = geoxr.GeoDataset(four, train.windows[:2])
    with pytest.raises(geoxr.BandCountError, match=r"validation dataset's scene .* 4 bands"):
        learner.validate(ds)
    with pytest.raises(geoxr.BandCountError, match=r"The dataset's scene .* 4 bands"):
        list(learner.predict_dataset(ds))


def test_a_model_of_bfloat16_weights_predicts(tmp_path, small_cfg, batch):
    # Its input stayed float32: "Input type (float) and bias type (c10::BFloat16)".
    model = torch.nn.Conv2d(6, 8, 1).to(torch.bfloat16)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), model=model, output_dir=tmp_path, progress=False
    )
    scores = learner.predict(batch)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(2, 40, 40), atol=1e-5, rtol=0)


def test_a_run_resumes_with_other_class_colours(tmp_path, nc_datasets, small_cfg):
    # Colours shape no saved state: "['class_config.colors'] differ" refused the resume.
    train, _ = nc_datasets
    subset = geoxr.GeoDataset(train.scene, train.windows[:4], normalize=train.normalize)
    cfg = small_cfg(batch_size=4)
    geoxr.SemanticSegmentationLearner(
        cfg, train_ds=subset, output_dir=tmp_path, progress=False
    ).train(1)
    names = cfg.class_config.names
    recoloured = cfg.replace(
        class_config=geoxr.ClassConfig(
            names, colors=[(i, i, i) for i in range(len(names))], null_class="null"
        )
    )
    resumed = geoxr.SemanticSegmentationLearner(
        recoloured, train_ds=subset, output_dir=tmp_path, progress=False
    )
    assert resumed.epoch == 1
