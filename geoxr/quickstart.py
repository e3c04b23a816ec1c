"""Quickstart: train, save a model bundle, predict a larger scene with dask, write Zarr and COG.

Run ``python -m geoxr.quickstart`` (or ``bash scripts/quickstart.sh``). By default it
generates demo scenes (see :mod:`geoxr.demo`): a training scene, a validation scene
and a larger scene to predict. It trains a small U-Net, saves ``model-bundle.zip``,
predicts the large scene block by block with dask (with a progress bar), writes
the predictions as a Zarr v3 store and as a COG, evaluates them against the
scene's labels and prints the metrics and output paths.

``--image`` and ``--labels`` train on the west half of your own scene, validate on
its east half and predict the whole scene. ``--scheduler ADDRESS`` runs the
prediction on a ``dask.distributed`` cluster.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import geoxr
from geoxr.demo import DEMO_CLASSES, make_demo_scene


def _at_least(smallest: int) -> Any:
    """An argparse type: an int of at least ``smallest``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < smallest:
            raise argparse.ArgumentTypeError(f"must be {smallest} or more, got {value}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m geoxr.quickstart", description=__doc__.split("\n")[0]
    )
    p.add_argument("--image", help="your image raster (default: generated demo scenes)")
    p.add_argument("--labels", help="label raster of class ids, or a vector file of polygons")
    p.add_argument("--classes", nargs="+", help="class names in id order (with --image)")
    p.add_argument("--null-class", default=None, help="name of the ignore class, if any")
    p.add_argument(
        "--class-id-column", help="class id property of vector labels (default: class_id)"
    )
    p.add_argument(
        "--default-class-id",
        type=_at_least(0),
        help="class id of vector labels without one (e.g. 1: every polygon is a building)",
    )
    p.add_argument("--output", default="output/quickstart", help="output directory")
    p.add_argument(
        "--predict-size",
        type=_at_least(16),
        help="edge of the demo scene to predict, in pixels (default: 4096; not with --image)",
    )
    # Chips step by half their size: 2 pixels at least.
    p.add_argument("--chip-size", type=_at_least(2), default=128)
    p.add_argument("--epochs", type=_at_least(1), default=4)
    p.add_argument("--batch-size", type=_at_least(1), default=8)
    p.add_argument("--width", type=_at_least(1), default=16, help="U-Net width")
    p.add_argument("--scheduler", help="address of a dask.distributed scheduler (tcp://...)")
    args = p.parse_args(argv)
    # Options of the user's own data mean nothing to the demo scenes: refused, not ignored.
    own = {
        "--labels": args.labels,
        "--classes": args.classes,
        "--null-class": args.null_class,
        "--class-id-column": args.class_id_column,
        "--default-class-id": args.default_class_id,
    }
    given = [flag for flag, value in own.items() if value is not None]
    if args.image is None and given:
        p.error(f"{', '.join(given)} describe your own data: give --image too.")
    if args.image is not None and args.predict_size is not None:
        p.error("--predict-size sizes the demo scene; with --image, the whole image is predicted.")
    args.predict_size = args.predict_size or 4096
    args.class_id_column = args.class_id_column or "class_id"
    return args


def _scenes(args: argparse.Namespace, out: Path) -> tuple[geoxr.Scene, geoxr.Scene, geoxr.Scene]:
    """Training, validation and prediction scenes."""
    if args.image is None:
        data = out / "data"
        class_config = geoxr.ClassConfig(DEMO_CLASSES)
        made = [
            make_demo_scene(data, size=size, seed=seed, name=name)
            for size, seed, name in (
                (768, 1, "train"),
                (384, 2, "valid"),
                (args.predict_size, 3, "predict"),
            )
        ]
        train, valid, predict = (
            geoxr.make_ss_scene(image, label_raster_uri=labels, class_config=class_config)
            for image, labels in made
        )
        return train, valid, predict
    if args.labels is None or args.classes is None:
        raise SystemExit("--image needs --labels and --classes too.")
    class_config = geoxr.ClassConfig(args.classes, null_class=args.null_class)
    is_vector = Path(args.labels).suffix.lower() not in (".tif", ".tiff", ".vrt", ".img", ".jp2")
    label_kw: dict[str, Any] = (
        {
            "label_vector_uri": args.labels,
            "class_id_column": args.class_id_column,
            "default_class_id": args.default_class_id,
        }
        if is_vector
        else {"label_raster_uri": args.labels}
    )
    height, width = geoxr.RasterioSource(args.image).shape

    def scene(bbox: tuple[int, int, int, int] | None) -> geoxr.Scene:
        image_kw = {"bbox": bbox} if bbox else {}
        return geoxr.make_ss_scene(
            args.image, class_config=class_config, image_raster_source_kw=image_kw, **label_kw
        )

    return scene((0, 0, height, width // 2)), scene((0, width // 2, height, width)), scene(None)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, bundle, predict with dask, write Zarr and COG, evaluate; print a summary."""
    args = parse_args(argv)
    start = time.perf_counter()
    out = Path(args.output)
    client = None
    if args.scheduler:
        from distributed import Client

        try:
            client = Client(args.scheduler, timeout=10)
        except (OSError, ValueError) as exc:  # nothing listening there, or no address
            raise SystemExit(
                f"Cannot reach a dask scheduler at --scheduler {args.scheduler!r} ({exc}). "
                "Start one (`dask scheduler`, then `dask worker ADDRESS`) and give its "
                "address, e.g. tcp://127.0.0.1:8786."
            ) from exc
    train_scene, valid_scene, target_scene = _scenes(args, out)
    size = args.chip_size
    train_ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        train_scene, size=size, stride=size // 2, normalize="stats"
    )
    valid_ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        valid_scene, size=size, stride=size, normalize=train_ds.normalize
    )
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=train_scene.class_config or geoxr.ClassConfig(DEMO_CLASSES),
        in_channels=train_scene.raster_source.num_channels,
        model=geoxr.ModelConfig(width=args.width, depth=2),
        solver=geoxr.SolverConfig(
            lr=3e-3, num_epochs=args.epochs, batch_size=args.batch_size, lr_schedule="onecycle"
        ),
    )
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=train_ds, valid_ds=valid_ds, output_dir=out / "train", resume=False
    )
    history = learner.train()
    bundle = learner.save_model_bundle()
    trained = time.perf_counter()

    labels = geoxr.predict_scene(
        bundle, target_scene.raster_source, chip_size=size, stride=size // 2
    )
    zarr_store = geoxr.SemanticSegmentationLabelStore(out / "predictions.zarr", resume=False)
    cog_store = geoxr.SemanticSegmentationLabelStore(out / "predictions.tif", write_scores=False)
    zarr_store.save(labels)
    cog_store.save(zarr_store.get_labels())  # the COG is made from the Zarr store: no recompute
    predicted = time.perf_counter()

    assert target_scene.label_source is not None
    evaluator = geoxr.SemanticSegmentationEvaluator(cfg.class_config)
    # Your own image: trained on its west half, scored on its east half alone.
    held_out = (
        None if args.image is None else [valid_scene.grid.window_polygon(valid_scene.grid.extent)]
    )
    metrics = evaluator.evaluate(
        target_scene.label_source, zarr_store.get_labels(), aoi_polygons=held_out
    )
    evaluator.save(metrics, out / "metrics.json")
    height, width = target_scene.grid.shape
    summary = {
        "train": {
            "windows": len(train_ds),
            "epochs": len(history),
            "valid_miou": round(history[-1]["miou"], 4),
        },
        "predict": {
            "scene": f"{height} x {width} px",
            "seconds": round(predicted - trained, 1),
            "mpx_per_s": round(height * width / 1e6 / (predicted - trained), 3),
            "scheduler": args.scheduler or "local threads",
        },
        "metrics": {
            "scored": "the whole predicted scene" if held_out is None else "its east half",
            "miou": round(metrics["miou"], 4),
            "accuracy": round(metrics["accuracy"], 4),
            "iou": {k: v["iou"] for k, v in metrics["per_class"].items()},
        },
        "outputs": {
            "model_bundle": str(bundle),
            "zarr": str(zarr_store.uri),
            "cog": str(cog_store.uri),
            "metrics": str(out / "metrics.json"),
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    if client is not None:
        client.close()
    return summary


#: geoxr's keyword arguments that the quickstart takes as flags, as its errors name them.
_FLAGS = {"class_id_column=": "--class-id-column ", "default_class_id=": "--default-class-id "}


def _as_flags(message: str) -> str:
    """``message`` with the keyword arguments the quickstart takes as flags named as flags.

    Examples
    --------
    >>> _as_flags("Give class_id_column=..., or default_class_id=1.")
    'Give --class-id-column ..., or --default-class-id 1.'
    """
    for keyword, flag in _FLAGS.items():
        message = message.replace(keyword, flag)
    return message


if __name__ == "__main__":
    try:
        main()
    except geoxr.GeoxrError as exc:  # the user's data or flags: what to change, no traceback
        raise SystemExit(f"python -m geoxr.quickstart: error: {_as_flags(str(exc))}") from None
