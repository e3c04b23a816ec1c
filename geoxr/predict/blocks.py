"""The per-block prediction function: chips of the global grid that touch a block, batched."""

from __future__ import annotations

import numpy as np
import torch

from geoxr.grid import ChipGrid, Window
from geoxr.label.blend import BlendMode, ScoreAccumulator
from geoxr.predict.model_cache import ModelRef, load_cached
from geoxr.read import RasterSource
from geoxr.read._base import invalid_pixels

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
    out_dtype: np.dtype,
) -> np.ndarray:
    """Blended class scores ``(class, h, w)`` for one block of the scene.

    Reads the block plus the halo its chips need in one windowed read, runs the
    chips through the (cached) model in batches and blends them. Pixels whose
    input is nodata get NaN scores.
    """
    learner = load_cached(model)
    num_classes = len(learner.cfg.class_config.ensure_null_class())
    chips = chip_grid.touching(block)
    halo = _halo(chips)
    chip = source.read(halo)
    invalid = invalid_pixels(chip)
    stats = learner.cfg.norm_stats
    if stats is not None:
        image = stats.normalize(chip.data, valid=~invalid)
    else:
        image = chip.data.astype(np.float32) * ~invalid
    acc = ScoreAccumulator(num_classes, block, blend=blend)
    for start in range(0, len(chips), batch_size):
        batch = chips[start : start + batch_size]
        x = np.stack([image[(..., *c.shift(-halo.ymin, -halo.xmin).slices)] for c in batch])
        scores = learner.predict(torch.from_numpy(x)).numpy()
        for window, chip_scores in zip(batch, scores, strict=True):
            acc.add(window, chip_scores)
    out = acc.result()
    inner = block.shift(-halo.ymin, -halo.xmin)
    out[:, invalid[inner.slices]] = np.nan
    return out.astype(out_dtype, copy=False)
