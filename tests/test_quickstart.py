"""The quickstart on the user's own image: trained on its west half, scored on its east half."""

import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from geoxr import quickstart


def test_quickstart_on_your_own_image_scores_the_held_out_half(tmp_path, nc_stack, nc_strata):
    # Its metrics covered the whole scene, the training half included.
    names = ["nodata", "developed", "agriculture", "herbaceous", "shrubland", "forest"]
    summary = quickstart.main(
        [
            "--image", str(nc_stack),
            "--labels", str(nc_strata),
            "--classes", *names, "water", "sediment",
            "--null-class", "nodata",
            "--output", str(tmp_path),
            "--chip-size", "64",
            "--epochs", "1",
            "--width", "8",
        ]
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    with rasterio.open(nc_strata) as src, rasterio.open(nc_stack) as image:
        truth, nodata = src.read(1), src.nodata
        imaged = (image.read() != image.nodata).all(axis=0)  # predicted: not the null class
    scored = (truth > 0) & (truth != nodata) & imaged
    half = truth.shape[1] // 2
    assert summary["metrics"]["scored"] == "its east half"
    assert metrics["pixels"] == int(scored[:, half:].sum())
    assert 0 < metrics["pixels"] < int(scored.sum())
    with rasterio.open(tmp_path / "predictions.tif") as cog:
        assert cog.crs == rasterio.open(nc_stack).crs and cog.shape == truth.shape
    assert np.isfinite(summary["metrics"]["accuracy"])


def test_quickstart_needs_an_epoch():
    with pytest.raises(SystemExit):
        quickstart.parse_args(["--epochs", "0"])


@pytest.mark.parametrize(
    ("option", "value", "smallest"),
    [("--predict-size", "0", 16), ("--chip-size", "1", 2), ("--batch-size", "0", 1)],
)
def test_option_values_it_cannot_use_are_refused_by_the_parser(option, value, smallest, capsys):
    # --predict-size 0 failed in rasterio, --chip-size 1 as a "stride=0" never given.
    with pytest.raises(SystemExit):
        quickstart.parse_args([option, value])
    assert f"must be {smallest} or more, got {value}" in capsys.readouterr().err


def test_a_scheduler_nobody_runs_is_a_clear_exit(tmp_path):
    # A raw OSError after a 30 s wait.
    with pytest.raises(SystemExit, match=r"Cannot reach a dask scheduler at --scheduler"):
        quickstart.main(["--scheduler", "tcp://127.0.0.1:9", "--output", str(tmp_path)])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--labels", "l.tif", "--classes", "a", "b"], "--labels, --classes describe your own"),
        (["--default-class-id", "1"], "--default-class-id describe your own data: give --image"),
        (["--image", "i.tif", "--predict-size", "64"], "--predict-size sizes the demo scene"),
    ],
)
def test_options_the_run_would_ignore_are_refused(argv, message, capsys):
    # --labels and --classes without --image trained on the demo scenes, exit code 0.
    with pytest.raises(SystemExit):
        quickstart.parse_args(argv)
    assert message in capsys.readouterr().err


def test_quickstart_on_your_own_polygons_without_class_ids(tmp_path, sn4_image, sn4_buildings):
    # The README's own-data example with SpaceNet's buildings (no class id property):
    # there was no option to give every polygon one.
    summary = quickstart.main(
        [
            "--image", str(sn4_image),
            "--labels", str(sn4_buildings),
            "--classes", "background", "building",
            "--default-class-id", "1",
            "--output", str(tmp_path),
            "--chip-size", "64",
            "--epochs", "1",
            "--width", "4",
        ]
    )  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["per_class"]["building"]["support"] > 0
    with rasterio.open(tmp_path / "predictions.tif") as cog, rasterio.open(sn4_image) as image:
        assert (cog.crs, cog.transform, cog.shape) == (image.crs, image.transform, image.shape)
    assert summary["metrics"]["scored"] == "its east half"


def test_an_error_in_the_users_data_names_the_flags_to_change_without_a_traceback(
    tmp_path, sn4_image, sn4_buildings
):
    # It printed a traceback whose advice named Python keyword arguments.
    run = subprocess.run(
        [
            sys.executable, "-m", "geoxr.quickstart",
            "--image", str(sn4_image),
            "--labels", str(sn4_buildings),
            "--classes", "background", "building",
            "--output", str(tmp_path),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "error: 43 features" in run.stderr and "give --default-class-id ..." in run.stderr
