"""The per-block prediction function: chips of the global grid that touch a block, batched."""

from __future__ import annotations

import numpy as np
import torch

from geoxr.grid import ChipGrid, Window
from geoxr.label.blend import BlendMode, ScoreAccumulator
from geoxr.predict.model_cache import ModelRef, load_cached
from geoxr.read import RasterSource
from geoxr.read._base import invalid_pixels
from geoxr.read._gdal import read_once_block_cache
from geoxr.read.stats import model_input

__all__ = ["predict_block"]


def _halo(chips: list[Window]) -> Window:
    """The smallest window holding all ``chips``."""
    return Window.from_box(
        min(c.ymin for c in chips),
        min(c.xmin for c in chips),
        max(c.ymax for c in chips),
        max(c.xmax for c in chips),
    )


def predict_block(
    block: Window,
    *,
    source: RasterSource,
    model: ModelRef,
    chip_grid: ChipGrid,
    batch_size: int,
    blend: BlendMode,
) -> np.ndarray:
    """Blended float32 class scores ``(class, h, w)`` for one block of the scene.

    Reads the block plus the halo its chips need in one windowed read, runs the
    chips through the (cached) model in batches and blends them. Pixels whose
    input is nodata get NaN scores.
    """
    learner = load_cached(model)
    num_classes = len(learner.classes)
    chips = chip_grid.touching(block)
    halo = _halo(chips)
    with read_once_block_cache():
        chip = source.read(halo)
    invalid = invalid_pixels(chip)
    any_invalid = bool(invalid.any())
    raw = chip.data
    acc = ScoreAccumulator(num_classes, block, chips=chips, blend=blend)
    buf = np.empty((batch_size, *raw.shape[:-2], *chip_grid.size), np.float32)
    for start in range(0, len(chips), batch_size):
        batch = chips[start : start + batch_size]
        x = buf[: len(batch)]
        # Each raw (e.g. uint8) chip goes straight into a slot of a reused float32 batch:
        # no float32 copy of the whole halo.
        for slot, c in zip(x, batch, strict=True):
            cut = c.slices_in(halo)
            model_input(
                raw[(..., *cut)],
                learner.cfg.norm_stats,
                invalid=invalid[cut] if any_invalid else None,
                out=slot,
            )
        scores = learner.predict(torch.from_numpy(x)).numpy()
        for window, chip_scores in zip(batch, scores, strict=True):
            acc.add(window, chip_scores)
    out = acc.result()
    if any_invalid:
        np.copyto(out, np.nan, where=invalid[block.slices_in(halo)])
    return out
