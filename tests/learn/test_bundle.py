import json
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

import geoxr
from geoxr.learn import read_bundle, read_bundle_config


@pytest.fixture
def trained(tmp_path, nc_class_config, nc_datasets, small_cfg):
    train, _ = nc_datasets
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), train_ds=train, output_dir=tmp_path / "out", progress=False
    )
    learner.train(1)
    return learner


def test_bundle_round_trip_gives_same_outputs(trained, tmp_path, batch):
    path = trained.save_model_bundle()
    assert path.name == "model-bundle.zip"
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "model.safetensors"]
        config = json.loads(zf.read("config.json"))
    assert config["schema_version"] == geoxr.learn.SCHEMA_VERSION
    assert config["norm_stats"]["means"] == list(trained.cfg.norm_stats.means)
    assert config["class_config"]["names"][0] == "null"

    loaded = geoxr.SemanticSegmentationLearner.from_model_bundle(path, output_dir=tmp_path / "re")
    assert loaded.cfg == trained.cfg
    x = batch
    assert torch.equal(loaded.predict(x), trained.predict(x))


def test_custom_model_bundle_needs_the_model(
    tmp_path, nc_class_config, nc_datasets, small_cfg, batch
):
    train, _ = nc_datasets
    model = torch.nn.Conv2d(6, len(nc_class_config), 1)
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), model=model, train_ds=train, output_dir=tmp_path, progress=False
    )
    learner.train(1)
    path = learner.save_model_bundle()
    with pytest.raises(geoxr.BundleError, match="custom model; pass the same architecture"):
        geoxr.SemanticSegmentationLearner.from_model_bundle(path)
    loaded = geoxr.SemanticSegmentationLearner.from_model_bundle(
        path, model=torch.nn.Conv2d(6, len(nc_class_config), 1)
    )
    x = batch
    assert torch.equal(loaded.predict(x), learner.predict(x))
    with pytest.raises(geoxr.BundleError, match="do not match the model"):
        geoxr.SemanticSegmentationLearner.from_model_bundle(
            path, model=torch.nn.Conv2d(6, len(nc_class_config), 3)
        )


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_bundle_rejects_unsafe_and_malformed_files(tmp_path, nc_class_config, small_cfg):
    config = json.dumps(small_cfg().to_dict())
    weights = save_safetensors({"w": torch.zeros(1)})
    traversal = _write_zip(
        tmp_path / "a.zip",
        {"config.json": config, "model.safetensors": weights, "../evil.py": "x"},
    )
    with pytest.raises(geoxr.BundleError, match=r"unexpected members \['../evil.py'\]"):
        read_bundle(traversal)
    pickled = _write_zip(tmp_path / "b.zip", {"config.json": config, "model.pth": b"\x80\x04"})
    with pytest.raises(geoxr.BundleError, match="unexpected members"):
        read_bundle(pickled)
    missing = _write_zip(tmp_path / "c.zip", {"config.json": config})
    with pytest.raises(geoxr.BundleError, match="lacks"):
        read_bundle(missing)
    (tmp_path / "d.zip").write_bytes(b"not a zip")
    with pytest.raises(geoxr.BundleError, match="not a readable zip file"):
        read_bundle(tmp_path / "d.zip")
    with pytest.raises(geoxr.BundleError, match="does not exist"):
        read_bundle(tmp_path / "nope.zip")
    bad_weights = _write_zip(
        tmp_path / "e.zip", {"config.json": config, "model.safetensors": b"xx"}
    )
    with pytest.raises(geoxr.BundleError, match="unreadable weights"):
        read_bundle(bad_weights)
    undecodable = _write_zip(tmp_path / "f.zip", {"cönfig.json": config})  # a UTF-8 name
    raw = undecodable.read_bytes()
    undecodable.write_bytes(raw.replace("ö".encode(), b"\xff\xfe"))  # no longer UTF-8
    for bundle in (traversal, pickled, missing, tmp_path / "d.zip", undecodable):
        with pytest.raises(geoxr.BundleError, match="Model bundle"):
            read_bundle(bundle)
        with pytest.raises(geoxr.BundleError, match="Model bundle"):
            read_bundle_config(bundle)
    with pytest.raises(geoxr.BundleError, match="does not exist"):
        read_bundle_config(tmp_path / "nope.zip")


def _with_header(weights: bytes, change) -> bytes:
    """Safetensors bytes whose JSON header ``change(header)`` edited, data unchanged."""
    length = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + length])
    change(header)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + weights[8 + length :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda w: w[:5],  # shorter than a header
        lambda w: w[:-3],  # the last tensor's data cut short
        lambda w: w + b"\0" * 4,  # bytes no tensor owns
        lambda w: (10**9).to_bytes(8, "little") + w[8:],  # a header longer than the file
        lambda w: w[:8] + b"x" + w[9:],  # a header that is not JSON
        lambda w: _with_header(w, lambda h: h["w"].update(shape=[5])),  # 6 values stored
        lambda w: _with_header(w, lambda h: h["w"].update(dtype="Q7")),  # no such dtype
    ],
)
def test_config_alone_is_read_without_the_weights_but_damaged_weights_still_fail(
    tmp_path, small_cfg, damage, monkeypatch
):
    config = small_cfg().to_dict()
    weights = save_safetensors({"w": torch.arange(6.0), "b": torch.ones(2, 2)})
    good = _write_zip(
        tmp_path / "good.zip", {"config.json": json.dumps(config), "model.safetensors": weights}
    )
    damaged = _write_zip(
        tmp_path / "damaged.zip",
        {"config.json": json.dumps(config), "model.safetensors": damage(weights)},
    )
    with pytest.raises(geoxr.BundleError, match="unreadable weights"):
        read_bundle(damaged)
    with pytest.raises(geoxr.BundleError, match="unreadable weights"):
        read_bundle_config(damaged)

    def no_loading(_: bytes) -> None:
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(geoxr.learn.bundle, "load_safetensors", no_loading)
    assert read_bundle_config(good) == config


def test_bundle_rejects_other_schema_versions(tmp_path, nc_class_config, small_cfg):
    d = small_cfg().to_dict()
    d["schema_version"] = 99
    path = _write_zip(
        tmp_path / "v.zip",
        {
            "config.json": json.dumps(d),
            "model.safetensors": save_safetensors({"w": torch.zeros(1)}),
        },
    )
    with pytest.raises(geoxr.BundleError, match=r"v\.zip': .*schema version 99 .* Upgrade geoxr"):
        geoxr.SemanticSegmentationLearner.from_model_bundle(path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # A model of 100000 channels was built (and its weights allocated) before the
        # bundle's 1-value tensor was compared with it: memory exhausted, or a raw error.
        ({"model": {"name": "unet", "width": 100_000, "depth": 3}}, r"do not match the model"),
        ({"model": {"name": "unet", "width": "4", "depth": 2}}, r"width must be an int >= 1"),
        ({"in_channels": 3.9}, r"in_channels must be an int >= 1, got 3\.9"),  # cut to 3
        ({"norm_stats": {"means": [0.0] * 6, "stds": [0.0] * 6}}, r"stds must be finite and > 0"),
    ],
)
def test_a_bundle_config_edited_by_hand_is_refused_before_any_model_is_built(
    tmp_path, small_cfg, edit, match
):
    d = small_cfg().to_dict() | edit
    path = _write_zip(
        tmp_path / "edited.zip",
        {
            "config.json": json.dumps(d),
            "model.safetensors": save_safetensors({"w": torch.zeros(1)}),
        },
    )
    with pytest.raises(geoxr.BundleError, match=r"edited\.zip.*" + match):
        geoxr.SemanticSegmentationLearner.from_model_bundle(path)


def test_bundle_is_written_atomically(trained, tmp_path):
    target = tmp_path / "bundles" / "m.zip"
    trained.save_model_bundle(target)
    assert [p.name for p in target.parent.iterdir()] == ["m.zip"]
    config, state = read_bundle(target)
    assert set(state) == set(trained.model.state_dict())
    assert np.isclose(config["solver"]["lr"], trained.cfg.solver.lr)


def test_weights_of_another_model_are_refused_before_they_are_inflated(
    tmp_path, small_cfg, monkeypatch
):
    # A 200 MB tensor of zeros compresses to a small zip: loading it used to take the
    # memory before the names and shapes were compared with the model's.
    cfg = small_cfg()
    big = save_safetensors({"w": torch.zeros(50_000_000)})
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(cfg.to_dict()))
        zf.writestr("model.safetensors", big)
    assert (tmp_path / "bomb.zip").stat().st_size < 1_000_000
    inflated = []
    monkeypatch.setattr(
        geoxr.learn.learner, "read_bundle", lambda path: inflated.append(path) or ({}, {})
    )
    with pytest.raises(geoxr.BundleError, match=r"'w' \(50000000,\) not in the model"):
        geoxr.SemanticSegmentationLearner.from_model_bundle(tmp_path / "bomb.zip")
    assert inflated == []


def test_a_config_that_is_no_json_object_is_a_bundle_error(tmp_path):
    listed = _write_zip(
        tmp_path / "l.zip",
        {"config.json": "[1, 2]", "model.safetensors": save_safetensors({"w": torch.zeros(1)})},
    )
    with pytest.raises(geoxr.BundleError, match=r"config that is a JSON list, not an object"):
        read_bundle_config(listed)


class _Tied(torch.nn.Module):
    """Two convolutions that share one weight (a tied-weights model)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.b = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.b.weight = self.a.weight
        self.head = torch.nn.Conv2d(6, classes, 1)

    def forward(self, x):
        return self.head(self.b(torch.relu(self.a(x))))


def test_a_model_with_tied_weights_is_bundled(tmp_path, nc_class_config, small_cfg, batch):
    # safetensors refuses tensors that share memory: a raw RuntimeError.
    classes = len(nc_class_config.ensure_null_class())
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), model=_Tied(classes), output_dir=tmp_path, progress=False
    )
    path = learner.save_model_bundle()
    loaded = geoxr.SemanticSegmentationLearner.from_model_bundle(path, model=_Tied(classes))
    assert loaded.model.b.weight is loaded.model.a.weight  # still tied
    assert torch.equal(loaded.predict(batch), learner.predict(batch))


def test_numpy_numbers_in_the_config_are_bundled_as_python_numbers(
    tmp_path, nc_class_config, small_cfg, batch
):
    # Statistics computed with numpy (float32 means) trained and checkpointed, then
    # save_model_bundle failed: "Object of type float32 is not JSON serializable".
    stats = geoxr.BandStats(tuple(np.arange(6, dtype=np.float32)), tuple(np.ones(6, np.float32)))
    cfg = small_cfg().replace(in_channels=np.int64(6), norm_stats=stats)
    learner = geoxr.SemanticSegmentationLearner(cfg, output_dir=tmp_path, progress=False)
    loaded = geoxr.SemanticSegmentationLearner.from_model_bundle(
        learner.save_model_bundle(), output_dir=tmp_path / "re"
    )
    assert loaded.cfg.norm_stats == stats and loaded.cfg.in_channels == 6
    assert torch.equal(loaded.predict(batch), learner.predict(batch))


class _WithExtraState(torch.nn.Conv2d):
    def get_extra_state(self):
        return {"note": "not a tensor"}

    def set_extra_state(self, state):
        pass


def test_state_that_is_no_tensor_is_a_bundle_error(tmp_path, nc_class_config, small_cfg):
    # write_bundle raised "AttributeError: 'dict' object has no attribute 'detach'".
    learner = geoxr.SemanticSegmentationLearner(
        small_cfg(), model=_WithExtraState(6, 8, 1), output_dir=tmp_path, progress=False
    )
    with pytest.raises(geoxr.BundleError, match=r"state '_extra_state' is a dict, not a tensor"):
        learner.save_model_bundle(tmp_path / "b.zip")
    assert not list(tmp_path.glob("*.zip"))


def test_a_bundle_written_when_null_was_a_class_of_its_own_still_loads(tmp_path, batch):
    # Before a class named "null" was the null class, ClassConfig(["background", "null"])
    # trained three outputs (a "_null" class added); read with today's rule, the bundle's
    # weights no longer matched its config.
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=geoxr.ClassConfig(["background", "building"]),
        in_channels=6,
        model=geoxr.ModelConfig(width=4, depth=2),
    )
    learner = geoxr.SemanticSegmentationLearner(cfg, output_dir=tmp_path, progress=False)
    config = cfg.to_dict()
    config["class_config"] = {
        "names": ["background", "null"],
        "colors": [[0, 0, 0], [255, 0, 0]],
        "null_class": None,
    }
    path = geoxr.learn.bundle.write_bundle(
        tmp_path / "old.zip", config, learner.model.state_dict()
    )
    old = geoxr.SemanticSegmentationLearner.from_model_bundle(path, output_dir=tmp_path)
    classes = old.cfg.class_config
    assert classes.names == ("background", "null", "_null") and classes.null_class_id == 2
    torch.testing.assert_close(old.predict(batch), learner.predict(batch))
