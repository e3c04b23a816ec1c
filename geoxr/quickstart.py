"""Quickstart: train a segmentation model on a scene and save a model bundle.

Run ``python -m geoxr.quickstart`` (or ``bash scripts/quickstart.sh``). By default
it trains on the west half of the NC Landsat 7 scene in geoxr's shared real data
(``$GEOXR_DATA``, default ``../shared/data``) with its land-cover label raster,
validates on the east half, prints the metrics and writes ``model-bundle.zip``.
Give ``--image`` and ``--labels`` (a label raster or polygons with a class id
property) to train on your own scene.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import geoxr

NC_CLASSES = [
    "null",
    "developed",
    "agriculture",
    "herbaceous",
    "shrubland",
    "forest",
    "water",
    "sediment",
]


def default_data_dir() -> Path:
    """``$GEOXR_DATA``, else ``shared/data`` beside the repository."""
    env = os.environ.get("GEOXR_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m geoxr.quickstart", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--image", help="image raster (default: NC Landsat 7 stack from the shared data)"
    )
    p.add_argument("--labels", help="label raster of class ids, or a vector file of polygons")
    p.add_argument("--classes", nargs="+", help="class names, id order (default: NC land cover)")
    p.add_argument("--null-class", default=None, help="name of the ignore class, if any")
    p.add_argument(
        "--class-id-column", default="class_id", help="class id property (vector labels)"
    )
    p.add_argument("--output", default="output/quickstart", help="output directory")
    p.add_argument("--chip-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--width", type=int, default=16, help="U-Net width")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Train on the west half of a scene, validate on the east half, save a bundle."""
    args = parse_args(argv)
    start = time.perf_counter()
    if args.image is None:
        nc = default_data_dir() / "nc_landsat7_raleigh"
        image, labels = nc / "lsat7_2000_stack.tif", nc / "landclass96_strata.tif"
        classes, null_class = NC_CLASSES, "null"
    else:
        if args.labels is None or args.classes is None:
            raise SystemExit("--image needs --labels and --classes too.")
        image, labels, classes, null_class = args.image, args.labels, args.classes, args.null_class
    class_config = geoxr.ClassConfig(classes, null_class=null_class)
    width = geoxr.RasterioSource(image).shape[1]
    is_vector = Path(labels).suffix.lower() not in (".tif", ".tiff", ".vrt", ".img", ".jp2")
    label_kw = (
        {"label_vector_uri": labels, "class_id_column": args.class_id_column}
        if is_vector
        else {"label_raster_uri": labels}
    )

    def half(cols: tuple[int, int]) -> geoxr.Scene:
        src = geoxr.RasterioSource(image)
        bbox = (0, cols[0], src.shape[0], cols[1])
        return geoxr.make_ss_scene(
            image, class_config=class_config, image_raster_source_kw={"bbox": bbox}, **label_kw
        )

    west, east = half((0, width // 2)), half((width // 2, width))
    size = args.chip_size
    train_ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        west, size=size, stride=size // 2, normalize="stats"
    )
    valid_ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        east, size=size, stride=size, normalize=train_ds.normalize
    )
    cfg = geoxr.SemanticSegmentationLearnerConfig(
        class_config=class_config,
        in_channels=train_ds.scene.raster_source.num_channels,
        model=geoxr.ModelConfig(width=args.width, depth=2),
        solver=geoxr.SolverConfig(
            lr=3e-3, num_epochs=args.epochs, batch_size=args.batch_size, lr_schedule="onecycle"
        ),
    )
    learner = geoxr.SemanticSegmentationLearner(
        cfg, train_ds=train_ds, valid_ds=valid_ds, output_dir=args.output, resume=False
    )
    history = learner.train()
    bundle = learner.save_model_bundle()
    last = history[-1]
    summary = {
        "train_windows": len(train_ds),
        "valid_windows": len(valid_ds),
        "epochs": len(history),
        "valid_miou": round(last["miou"], 4),
        "valid_accuracy": round(last["accuracy"], 4),
        "per_class_iou": {k: v["iou"] for k, v in last["per_class"].items()},
        "model_bundle": str(bundle),
        "history": str(Path(args.output) / "history.json"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
