import functools
import multiprocessing
import os
import subprocess
import sys
import textwrap
import zipfile

import dask
import numpy as np
import pytest
import rasterio
import torch
from distributed import Client, LocalCluster
from rasterio.env import get_gdal_config, set_gdal_config

import geoxr
from geoxr.grid import block_chunks
from geoxr.predict import load_cached, model_cache
from geoxr.predict.model_cache import ModelRef, loads_so_far
from geoxr.read._gdal import READ_ONCE_CACHE_BYTES, read_once_block_cache
from geoxr.testing import raise_if_dask_computes


def reference_scores(bundle, source, chip_size, stride, padding=0):
    """Plain in-memory prediction: every chip of the same grid, blended with the same weights."""
    learner = geoxr.SemanticSegmentationLearner.from_model_bundle(bundle, output_dir=bundle.parent)
    learner.progress = False
    chips = geoxr.ChipGrid.plan(source.shape, chip_size, stride, padding=padding).windows()
    ds = geoxr.GeoDataset(geoxr.Scene("ref", source), chips, normalize=learner.cfg.norm_stats)
    pairs = list(learner.predict_dataset(ds, batch_size=8))
    labels = geoxr.SemanticSegmentationLabels.from_predictions(
        [w for w, _ in pairs],
        [s for _, s in pairs],
        grid=source.grid,
        class_config=learner.cfg.class_config,
    )
    return labels.scores.values


@pytest.fixture(scope="module")
def nc_source(nc_stack):
    return geoxr.RasterioSource(nc_stack)


def test_predict_builds_lazily_with_exact_georeference(nc_bundle, nc_source, nc_stack):
    with raise_if_dask_computes():
        labels = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=32)
        ids = labels.class_ids
    with rasterio.open(nc_stack) as ds:
        for arr in (labels.scores, ids):
            assert arr.rio.crs == ds.crs
            assert arr.rio.transform() == ds.transform
            assert arr.rio.shape == ds.shape
            assert arr.rio.bounds() == tuple(ds.bounds)
    assert labels.scores.dims == ("class", "y", "x")
    assert list(labels.scores["class"].values) == list(labels.class_config.names)
    assert labels.scores.dtype == np.float32


def test_building_a_prediction_reads_the_config_alone_and_checks_the_weights(
    nc_bundle, nc_source, tmp_path, monkeypatch
):
    def no_loading(_: bytes) -> None:
        raise AssertionError("predict_scene loaded the weights")

    with monkeypatch.context() as patched:
        patched.setattr(geoxr.learn.bundle, "load_safetensors", no_loading)
        labels = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=32)
    assert labels.scores.shape[1:] == nc_source.shape
    damaged = tmp_path / "model-bundle.zip"
    with zipfile.ZipFile(nc_bundle) as src, zipfile.ZipFile(damaged, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))
        dst.writestr("model.safetensors", src.read("model.safetensors")[:-100])
    with pytest.raises(geoxr.BundleError, match="unreadable weights"):
        geoxr.predict_scene(damaged, nc_source, chip_size=64, stride=32)


def test_block_reads_cap_gdal_block_cache_and_the_user_process_gets_it_back(
    nc_bundle, nc_source, monkeypatch, gdal_cache_of_256_mib
):
    user_size = gdal_cache_of_256_mib  # larger than the cap: what a notebook may have set
    seen = []
    read = geoxr.RasterioSource.read

    def read_and_look(self, window):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return read(self, window)

    monkeypatch.setattr(geoxr.RasterioSource, "read", read_and_look)
    labels = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=32, block_size=128)
    labels.scores.compute(scheduler="threads")
    assert len(seen) == labels.scores.data.npartitions
    assert set(seen) == {READ_ONCE_CACHE_BYTES}
    assert get_gdal_config("GDAL_CACHEMAX") == user_size


def test_a_size_set_while_blocks_read_is_kept(gdal_cache_of_256_mib):
    with read_once_block_cache(), read_once_block_cache():  # two blocks at once
        assert get_gdal_config("GDAL_CACHEMAX") == READ_ONCE_CACHE_BYTES
        set_gdal_config("GDAL_CACHEMAX", 32 * 2**20)  # the user, meanwhile
    assert get_gdal_config("GDAL_CACHEMAX") == 32 * 2**20


def test_prediction_equals_in_memory_reference_and_marks_nodata(nc_bundle, nc_source):
    labels = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=32)
    scores = labels.scores.values
    nodata = np.ma.getmaskarray(nc_source.read(nc_source.extent)).any(axis=0)
    reference = reference_scores(nc_bundle, nc_source, 64, 32)
    np.testing.assert_allclose(scores[:, ~nodata], reference[:, ~nodata], atol=1e-5)
    assert nodata.sum() == 81535  # the 6th band's larger nodata border (data README)
    assert np.isnan(scores[:, nodata]).all()
    assert not np.isnan(scores[:, ~nodata]).any()
    np.testing.assert_allclose(scores[:, ~nodata].sum(axis=0), 1.0, rtol=1e-5)
    ids = labels.class_ids.values
    assert (ids[nodata] == labels.null_class_id).all()
    ranked = scores[:, ~nodata].copy()
    ranked[labels.null_class_id] = -np.inf  # "null" (no prediction) never wins the arg-max
    assert (ids[~nodata] == ranked.argmax(axis=0)).all()


@pytest.mark.parametrize("block_size", [64, 100, 250, 1000])
def test_chunk_size_does_not_change_the_result(nc_bundle, nc_source, block_size):
    base = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=48, block_size=128)
    other = geoxr.predict_scene(
        nc_bundle, nc_source, chip_size=64, stride=48, block_size=block_size
    )
    assert other.scores.data.chunks[1] == block_chunks(443, block_size)
    np.testing.assert_allclose(other.scores.values, base.scores.values, atol=1e-5, equal_nan=True)


def test_atlanta_edges_are_covered_and_float16_on_request(atlanta_bundle, sn4_image):
    source = geoxr.RasterioSource(sn4_image)
    labels = geoxr.predict_scene(
        atlanta_bundle, source, chip_size=256, stride=200, dtype="float16"
    )
    scores = labels.scores.values
    assert scores.dtype == np.float16 and scores.shape == (3, 900, 900)
    assert not np.isnan(scores).any()  # no nodata pixel in this scene; every edge pixel predicted
    ref = reference_scores(atlanta_bundle, source, 256, 200)
    np.testing.assert_allclose(scores.astype(np.float32), ref, atol=2e-3)


def test_a_scene_shorter_than_a_chip_on_one_axis_is_padded_on_that_axis_alone(nc_bundle, nc_stack):
    # Both axes were padded: the last column of chips reached 20 px past the scene's
    # right edge, where the chips could have ended on it (real data for every pixel).
    source = geoxr.RasterioSource(nc_stack, bbox=(200, 100, 240, 400))  # 40 x 300, all data
    chips = geoxr.ChipGrid.plan(source.shape, 64, 32, padding=(None, 0))
    assert chips.col_starts[-1] + 64 == 300 and chips.row_starts == (0,)
    got = geoxr.predict_scene(nc_bundle, source, chip_size=64, stride=32).scores.values
    expected = reference_scores(nc_bundle, source, 64, 32, padding=(None, 0))
    assert not np.isnan(expected).any()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    padded_both = reference_scores(nc_bundle, source, 64, 32, padding=None)
    assert np.abs(padded_both - expected).max() > 1e-4  # the plans tell apart


def test_local_cluster_matches_threads_and_loads_model_once_per_worker(nc_bundle, nc_source):
    local = geoxr.predict_scene(
        nc_bundle, nc_source, chip_size=64, stride=32, block_size=128
    ).scores.values
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        labels = geoxr.predict_scene(nc_bundle, nc_source, chip_size=64, stride=32, block_size=128)
        distributed = labels.scores.compute().values
        loads = client.run(loads_so_far)
    np.testing.assert_allclose(distributed, local, atol=1e-5, equal_nan=True)
    assert len(loads) == 2
    assert all(n == 1 for n in loads.values()), loads  # 16 blocks, one bundle load per worker


def test_a_lambda_model_factory_loads_once_per_cluster_worker(
    tmp_path, nc_source, nc_class_config
):
    import torch

    classes = len(nc_class_config)
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=torch.nn.Conv2d(6, classes, 1), output_dir=tmp_path, progress=False
    )
    bundle = learner.save_model_bundle()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        labels = geoxr.predict_scene(
            bundle,
            nc_source,
            chip_size=64,
            stride=64,
            block_size=128,
            model_factory=lambda: torch.nn.Conv2d(6, classes, 1),  # unpickled anew per task
        )
        labels.scores.compute()
        loads = client.run(loads_so_far)
    assert labels.scores.data.npartitions == 16
    assert max(loads.values()) == 1, loads  # not once per task (8 a worker before)


def test_model_cache_reuses_the_learner(nc_bundle):
    ref = ModelRef.of(nc_bundle)
    assert load_cached(ref) is load_cached(ref)


def test_model_cache_loads_a_lambda_factory_once_for_all_its_copies(tmp_path, nc_class_config):
    import cloudpickle
    import torch

    classes = len(nc_class_config)
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=torch.nn.Conv2d(6, classes, 1), output_dir=tmp_path, progress=False
    )
    bundle = tmp_path / "model-bundle.zip"
    learner.save_model_bundle(bundle)
    ref = ModelRef.of(bundle, model_factory=lambda: torch.nn.Conv2d(6, classes, 1))
    # What every task on a dask cluster unpickles: a new lambda, at a new address.
    copies = [cloudpickle.loads(cloudpickle.dumps(ref)) for _ in range(3)]
    assert len({repr(copy.model_factory) for copy in copies}) == 3
    before = loads_so_far()
    first = load_cached(ref)
    assert all(load_cached(copy) is first for copy in copies)
    assert loads_so_far() == before + 1
    # A rewritten bundle is loaded again, in place of the learner loaded before.
    later = bundle.stat().st_mtime + 10
    os.utime(bundle, (later, later))
    reloaded = load_cached(copies[0])
    assert reloaded is not first and load_cached(copies[1]) is reloaded
    assert loads_so_far() == before + 2
    assert sum(key[1] == ref.bundle_path for key in model_cache._cache) == 1


def _load_in_child(ref):
    return load_cached(ref) is not None


def test_a_process_forked_while_a_bundle_loads_can_load_it(nc_bundle):
    ref = ModelRef.of(nc_bundle, device="cpu")
    context = multiprocessing.get_context("fork")
    with model_cache._lock, context.Pool(1) as pool:  # forked while this thread holds it
        assert pool.apply_async(_load_in_child, (ref,)).get(timeout=60)


def _conv_learner(conv_class, tmp_path, class_config):
    """A learner of a seeded 1x1 ``conv_class`` on the NC scene's 6 bands, and its factory."""
    factory = functools.partial(conv_class, 6, len(class_config), 1)
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=class_config, in_channels=6)
    torch.manual_seed(0)
    model = factory()
    with torch.no_grad():
        model.weight.mul_(0.01)  # logits of a few units for raw 8-bit imagery: unsaturated
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=model, output_dir=tmp_path, progress=False
    )
    return learner, factory


class _BFloat16Weights(torch.nn.Conv2d):
    """A 1x1 convolution with bfloat16 weights, taking float32 chips."""

    def __init__(self, *args):
        super().__init__(*args, dtype=torch.bfloat16)

    def forward(self, x):
        return super().forward(x.to(torch.bfloat16))


@pytest.mark.parametrize("conv_class", [torch.nn.Conv2d, _BFloat16Weights])
def test_in_memory_learner_and_custom_model_factory(
    tmp_path, nc_source, nc_class_config, conv_class
):
    # bfloat16 weights: the bundle's dask token took them through numpy, which has none.
    learner, factory = _conv_learner(conv_class, tmp_path, nc_class_config)
    # Without the factory, workers could not rebuild the model: said before any compute.
    with pytest.raises(geoxr.ConfigError, match=r"custom nn.Module.*model_factory=\.\.\."):
        geoxr.predict_scene(learner, nc_source, chip_size=64, stride=64)
    labels = geoxr.predict_scene(
        learner, nc_source, chip_size=64, stride=64, model_factory=factory
    )
    x = np.nan_to_num(nc_source.read(geoxr.Window(100, 100, 64, 64)).filled(0)).astype(np.float32)
    expected = learner.predict(torch.from_numpy(x)[None])[0].numpy()
    got = labels.scores.isel(y=slice(100, 164), x=slice(100, 164)).values
    np.testing.assert_allclose(got, expected, atol=1e-5)


class _BFloat16Conv(torch.nn.Conv2d):
    """A 1x1 convolution run under CPU autocast: bfloat16 logits, as a user's model may give."""

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return super().forward(x)


def test_a_model_giving_bfloat16_logits_predicts_float32_scores(
    tmp_path, nc_source, nc_class_config
):
    # numpy has no bfloat16: Tensor.numpy() raised a TypeError inside every block task.
    learner, factory = _conv_learner(_BFloat16Conv, tmp_path, nc_class_config)
    model = learner.model
    window = geoxr.Window(100, 100, 64, 64)
    x = np.nan_to_num(nc_source.read(window).filled(0)).astype(np.float32)
    assert model(torch.from_numpy(x)[None]).dtype == torch.bfloat16
    labels = geoxr.predict_scene(
        learner, nc_source, chip_size=64, stride=64, model_factory=factory
    )
    got = labels.scores.isel(y=slice(100, 164), x=slice(100, 164)).values
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=0), 1.0, atol=1e-5)  # softmax taken in float32
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)[None]).float(), 1)[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert 0.05 < expected.max(axis=0).mean() < 0.95  # no saturated, trivially equal scores


def test_float16_scores_keep_the_class_ids_of_float32_scores(tmp_path, nc_source, nc_class_config):
    # Class ids were the arg-max of the float16 scores: scores a hair apart became ties,
    # which the lower class id won.
    learner, factory = _conv_learner(torch.nn.Conv2d, tmp_path, nc_class_config)
    with torch.no_grad():
        learner.model.weight.zero_()
        learner.model.bias.zero_()
        learner.model.bias[2] = 1e-4  # class 2 ahead of the others by 1e-5 in probability
    kwargs = {"chip_size": 64, "stride": 64, "model_factory": factory}
    full = geoxr.predict_scene(learner, nc_source, **kwargs)
    half = geoxr.predict_scene(learner, nc_source, dtype="float16", **kwargs)
    ids = full.class_ids.values
    valid = ids != full.null_class_id
    assert valid.any() and (ids[valid] == 2).all()
    scores = half.scores.values
    assert scores.dtype == np.float16 and (scores[1][valid] == scores[2][valid]).all()  # ties
    np.testing.assert_array_equal(half.class_ids.values, ids)


def test_band_count_mismatch_is_a_clear_error(
    tmp_path, atlanta_bundle, nc_source, nc_class_config
):
    with pytest.raises(geoxr.BandCountError, match="takes 1 bands but"):
        geoxr.predict_scene(atlanta_bundle, nc_source, chip_size=64)
    # Statistics of other bands than the model's: "Chip has 6 bands but the stats have 5"
    # in every block task.
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=nc_class_config,
        in_channels=6,
        model=geoxr.ModelConfig(width=4, depth=1),
        norm_stats=geoxr.BandStats((0.0,) * 5, (1.0,) * 5),
    )
    bundle = geoxr.SemanticSegmentationLearner(
        cfg, output_dir=tmp_path, progress=False
    ).save_model_bundle()
    with pytest.raises(geoxr.BundleError, match=r"normalises 5 bands, but .* has 6"):
        geoxr.predict_scene(bundle, nc_source, chip_size=64)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stride": 100}, geoxr.WindowError, r"stride 100 must be an int from 1 to chip_size"),
        ({"stride": 0}, geoxr.WindowError, r"stride 0 must be"),
        ({"dtype": "uint8"}, geoxr.ConfigError, r"give 'float32' or 'float16'"),
        ({"batch_size": 0}, geoxr.ConfigError, r"batch_size must be an int >= 1, got 0"),
        ({"block_size": -64}, geoxr.ConfigError, r"block_size must be an int >= 1"),
        ({"chip_size": 64.0}, geoxr.ConfigError, r"chip_size must be an int >= 1 .* 64.0"),
        # A TypeError from the stride's default (chip_size // 2) before:
        ({"chip_size": (64, 128)}, geoxr.ConfigError, r"\(chips are square\), got \(64, 128\)"),
        # Checked only where chips overlap: at compute time, midway through a write.
        ({"blend": "gaussian"}, geoxr.ConfigError, r"blend must be 'cosine' or 'uniform'"),
    ],
)
def test_arguments_that_would_give_incomplete_scores_are_refused(
    nc_bundle, nc_source, kwargs, error, match
):
    # A stride past the chip left the pixels between chips NaN / null over valid imagery;
    # uint8 scores were all 0; the others were raw errors at compute time.
    with pytest.raises(error, match=match):
        geoxr.predict_scene(nc_bundle, nc_source, **{"chip_size": 64, **kwargs})


def test_a_raster_source_or_bundle_of_the_wrong_kind_says_what_to_give(
    tmp_path, nc_bundle, nc_source, nc_stack
):
    # A path or a DataArray as the raster source: raw AttributeError 'num_channels'.
    for given in (str(nc_stack), nc_source.data):
        with pytest.raises(
            geoxr.ConfigError, match=r"takes a raster source, got a (str|DataArray)\. Wrap it"
        ):
            geoxr.predict_scene(nc_bundle, given, chip_size=64)
    with pytest.raises(geoxr.BundleError, match=r"is a directory; give the bundle's .zip"):
        geoxr.predict_scene(tmp_path, nc_source, chip_size=64)  # "does not exist" before
    with pytest.raises(geoxr.ConfigError, match=r"blend must be"):
        geoxr.SemanticSegmentationLabels.from_predictions(
            [], [], grid=nc_source.grid, class_config=geoxr.ClassConfig(["a"]), blend="max"
        )


def test_another_model_factory_is_another_prediction(tmp_path, nc_source, nc_class_config):
    import functools

    import torch

    classes = len(nc_class_config)
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    plain = functools.partial(torch.nn.Conv2d, 6, classes, 1)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=plain(), output_dir=tmp_path, progress=False
    )
    bundle = tmp_path / "model-bundle.zip"
    learner.save_model_bundle(bundle)
    # The same weights in another architecture: its output negated.
    flipped = functools.partial(_NegatedConv, 6, classes, 1)
    a = geoxr.predict_scene(bundle, nc_source, chip_size=64, stride=64, model_factory=plain)
    b = geoxr.predict_scene(bundle, nc_source, chip_size=64, stride=64, model_factory=flipped)
    assert a.scores.data.name != b.scores.data.name
    window = {"y": slice(100, 164), "x": slice(100, 164)}
    both = dask.compute(a.scores.isel(window), b.scores.isel(window))
    assert not np.allclose(both[0], both[1])


def test_a_custom_model_of_the_users_script_is_the_same_job_in_every_run(
    tmp_path, nc_stack, nc_class_config
):
    # A model class of the user's script (or a lambda) had a dask token of its own in
    # every process: the script run again raised "another prediction job" on its own
    # finished store, and a killed run resumed nothing.
    script = tmp_path / "predict_it.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import functools, sys, torch, geoxr

            class MyNet(torch.nn.Module):
                def __init__(self, bands, classes):
                    super().__init__()
                    self.conv = torch.nn.Conv2d(bands, classes, 1)

                def forward(self, x):
                    return self.conv(x)

            factory = functools.partial(MyNet, 6, {len(nc_class_config)})
            bundle = sys.argv[1]
            if sys.argv[2] == "train":
                cfg = geoxr.SemanticSegmentationLearnerConfig(
                    class_config=geoxr.ClassConfig.from_dict({nc_class_config.to_dict()!r}),
                    in_channels=6,
                )
                learner = geoxr.SemanticSegmentationLearner(cfg, model=factory(), output_dir=".")
                learner.save_model_bundle(bundle)
            labels = geoxr.predict_scene(
                bundle, geoxr.RasterioSource({str(nc_stack)!r}), chip_size=64,
                model_factory=factory if sys.argv[3] == "script" else lambda: factory(),
            )
            print(labels.scores.data.name)
            """
        )
    )

    def task_name(*args):
        run = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "b.zip"), *args],
            capture_output=True, text=True, cwd=tmp_path, check=True,
        )  # fmt: skip
        return run.stdout.strip().splitlines()[-1]

    first = task_name("train", "script")
    assert task_name("again", "script") == first
    assert task_name("again", "lambda") == task_name("again", "lambda")


def test_a_model_factory_is_not_called_to_name_the_prediction(
    tmp_path, nc_source, nc_class_config
):
    # It was called in the client (a factory that puts its model on a GPU the client
    # lacks failed there), and its model's repr named it: arguments kept as plain
    # attributes, which the repr does not show, gave two models one name.
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    classes = len(nc_class_config)
    learner = geoxr.SemanticSegmentationLearner(
        cfg, model=torch.nn.Conv2d(6, classes, 1), output_dir=tmp_path, progress=False
    )
    bundle = learner.save_model_bundle(tmp_path / "model-bundle.zip")
    calls = []

    def factory(sign):
        calls.append(sign)
        return _ScaledConv(6, classes, 1, sign=sign)

    names = {
        geoxr.predict_scene(
            bundle, nc_source, chip_size=64, model_factory=functools.partial(factory, sign)
        ).scores.data.name
        for sign in (1.0, -1.0)
    }
    assert len(names) == 2 and calls == []


class _ScaledConv(torch.nn.Conv2d):
    """A 1 x 1 convolution whose output is multiplied by ``sign`` (not in its repr)."""

    def __init__(self, *args, sign=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sign = sign

    def forward(self, x):
        return self.sign * super().forward(x)


class _NegatedConv(torch.nn.Conv2d):
    """A 1 x 1 convolution's architecture, the same weights, its output negated."""

    def forward(self, x):
        return -super().forward(x)


def test_the_model_cache_keeps_the_latest_learners_only(tmp_path, nc_class_config):
    # A program predicting with each epoch's learner kept every one of them loaded.
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    refs = []
    for epoch in range(model_cache.MAX_CACHED_MODELS + 2):
        model = torch.nn.Conv2d(6, len(nc_class_config), 1)
        learner = geoxr.SemanticSegmentationLearner(
            cfg, model=model, output_dir=tmp_path, progress=False
        )
        bundle = learner.save_model_bundle(tmp_path / f"epoch-{epoch}.zip")
        factory = functools.partial(torch.nn.Conv2d, 6, len(nc_class_config), 1)
        refs.append(ModelRef.of(bundle, "cpu", factory))
        load_cached(refs[-1])
    paths = [key[1] for key in model_cache._cache]
    assert len(paths) <= model_cache.MAX_CACHED_MODELS
    assert str(refs[-1].bundle_path) in paths and str(refs[0].bundle_path) not in paths
    before = loads_so_far()
    assert load_cached(refs[-1]) is load_cached(refs[-1]) and loads_so_far() == before


def test_a_bundle_saved_again_at_the_same_time_is_loaded_again(tmp_path, nc_class_config):
    # The cache compared modification times only: a bundle saved again within the
    # file system's time resolution (or with its time kept) gave the old model.
    cfg = geoxr.SemanticSegmentationLearnerConfig(class_config=nc_class_config, in_channels=6)
    factory = functools.partial(torch.nn.Conv2d, 6, len(nc_class_config), 1)
    bundle = tmp_path / "model-bundle.zip"
    ref = ModelRef.of(bundle, "cpu", factory)
    weights = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        learner = geoxr.SemanticSegmentationLearner(
            cfg, model=factory(), output_dir=tmp_path, progress=False
        )
        learner.save_model_bundle(bundle)
        if seed == 1:
            first_mtime = os.stat(bundle).st_mtime_ns
        else:
            os.utime(bundle, ns=(first_mtime, first_mtime))
        weights.append(learner.model.weight.detach().clone())
        assert torch.equal(load_cached(ref).model.weight, weights[-1])
    assert not torch.equal(weights[0], weights[1])


_PREDICT_WITH_A_LEARNER = """
import geoxr, sys, tempfile
cfg = geoxr.SemanticSegmentationLearnerConfig(
    class_config=geoxr.ClassConfig(["a", "b"]), in_channels=6,
    model=geoxr.ModelConfig(width=4, depth=2),
)
learner = geoxr.SemanticSegmentationLearner(
    cfg, output_dir=tempfile.mkdtemp(), progress=False, seed=3
)
labels = geoxr.predict_scene(learner, geoxr.RasterioSource(sys.argv[1]), chip_size=64)
print(labels.scores.data.name)
print(float(labels.scores.isel(x=slice(0, 64), y=slice(0, 64)).mean()))
"""


def test_a_learners_temporary_bundle_goes_with_its_process_and_keeps_its_keys(tmp_path, nc_stack):
    # predict_scene(learner) saved a bundle under the temporary directory for every
    # new model, and none was ever removed.
    import subprocess
    import sys

    runs = []
    for run in range(2):
        tmp = tmp_path / f"tmp-{run}"
        tmp.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _PREDICT_WITH_A_LEARNER, str(nc_stack)],
            env={**os.environ, "TMPDIR": str(tmp)},
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(done.stdout.split())
        assert not list(tmp.glob("geoxr-predict-*"))  # removed when the process exited
    # The same model gets the same dask keys in another process (a Zarr store it was
    # writing resumes), and the same scores.
    assert runs[0] == runs[1] and runs[0][0].startswith("geoxr-predict-")


@pytest.mark.parametrize(
    ("device", "match"),
    [("tpu", r"device 'tpu' is no torch device"), ("cuda:7", r"device 'cuda:7' is not available")],
)
def test_a_device_torch_lacks_is_refused_when_predict_scene_is_called(
    nc_bundle, nc_stack, device, match
):
    # It failed inside the first block task, with torch's raw error.
    with pytest.raises(geoxr.ConfigError, match=match):
        geoxr.predict_scene(nc_bundle, geoxr.RasterioSource(nc_stack), device=device)
