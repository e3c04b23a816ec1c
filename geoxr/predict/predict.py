"""predict_scene: a model bundle and a raster source give lazy, georeferenced labels."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import dask.array as da
import numpy as np
import numpy.typing as npt
import xarray as xr
from dask.base import tokenize
from torch import nn

from geoxr._devices import check_device
from geoxr._distributed import distributed_client
from geoxr.errors import BundleError, ConfigError, WindowError
from geoxr.grid import ChipGrid, block_chunks, non_integers, window_of_block
from geoxr.label import SemanticSegmentationLabels
from geoxr.label.blend import BlendMode, check_blend
from geoxr.learn import SemanticSegmentationLearner
from geoxr.learn.bundle import read_bundle_config
from geoxr.learn.config import SemanticSegmentationLearnerConfig
from geoxr.predict.blocks import predict_block
from geoxr.predict.bundle_ref import bundle_and_token
from geoxr.predict.model_cache import ModelRef
from geoxr.read import RasterSource

__all__ = ["predict_scene"]


def _check_arguments(
    raster_source: object,
    chip_size: int,
    stride: int | None,
    batch_size: int,
    block_size: int | None,
    blend: object,
    dtype: npt.DTypeLike,
) -> int:
    """Refuse arguments that would give scores that look complete but are not.

    Returns the stride (default: ``chip_size // 2``).
    """
    if not isinstance(raster_source, RasterSource):
        raise ConfigError(
            f"predict_scene takes a raster source, got a {type(raster_source).__name__}. "
            "Wrap it: geoxr.RasterioSource(path) for a file, "
            "geoxr.XarraySource(data_array) for a DataArray."
        )
    if non_integers([chip_size]) or chip_size < 1:
        raise ConfigError(f"chip_size must be an int >= 1 (chips are square), got {chip_size!r}.")
    if non_integers([batch_size]) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}.")
    stride = max(1, chip_size // 2) if stride is None else stride
    if non_integers([stride]) or not 1 <= stride <= chip_size:
        raise WindowError(
            f"stride {stride!r} must be an int from 1 to chip_size ({chip_size}): a larger "
            "stride leaves pixels between chips unpredicted (NaN scores, the null class). "
            "Give stride <= chip_size, or leave it out (chip_size // 2)."
        )
    if block_size is not None and (non_integers([block_size]) or block_size < 1):
        raise ConfigError(
            f"block_size must be an int >= 1 (best a multiple of the stride), got {block_size!r}."
        )
    try:
        floats = np.dtype(dtype).kind == "f"
    except TypeError:
        floats = False
    if not floats:
        raise ConfigError(
            f"dtype {dtype!r}: scores are probabilities in [0, 1]; give 'float32' or 'float16'."
        )
    check_blend(blend)
    return stride


def predict_scene(
    learner_or_bundle: SemanticSegmentationLearner | str | os.PathLike[str],
    raster_source: RasterSource,
    *,
    chip_size: int = 256,
    stride: int | None = None,
    batch_size: int = 16,
    blend: BlendMode = "cosine",
    device: str | None = None,
    block_size: int | None = None,
    dtype: Literal["float32", "float16"] = "float32",
    model_factory: Callable[[], nn.Module] | None = None,
) -> SemanticSegmentationLabels:
    """Predict a whole scene lazily: one dask task per block, never per chip.

    Chips of size ``chip_size`` step by ``stride`` on one grid anchored to the
    scene's top-left corner (the last row and column of chips end on the scene
    edge, so every pixel is covered by real data). Each block task reads its
    chips with one windowed read (block plus halo), runs them in batches and
    blends overlaps with smooth weights, so the result does not depend on the
    block size or the scheduler. The model reaches each worker as a bundle path
    and is loaded once per worker process.

    Parameters
    ----------
    learner_or_bundle : SemanticSegmentationLearner or path
        A trained learner or a model bundle path. A learner is saved once per
        process to a temporary bundle, which workers load and which is removed
        when the process exits.
    raster_source : RasterSource
        The imagery; must have the bands the model was trained on.
    chip_size, stride : int
        Chip size and step, ``1 <= stride <= chip_size``; ``stride`` defaults to
        ``chip_size // 2``.
    batch_size : int
        Chips per model call.
    blend : {'cosine', 'uniform'}
        Weights of overlapping chips.
    device : str, optional
        Torch device for workers (default: CUDA if available).
    block_size : int, optional
        Block edge in pixels; default the largest multiple of ``stride`` up to 1024
        (at least ``stride``). Any size gives the same scores; a multiple of
        ``stride`` reads least (no chip is run in two blocks).
    dtype : {'float32', 'float16'}
        Dtype of the scores.
    model_factory : callable, optional
        For a bundle trained with a custom ``nn.Module``: a picklable zero-argument
        callable that builds that architecture on each worker.

    Notes
    -----
    Every input tile is read once, so GDAL's block cache only makes memory grow
    with the scene: while block tasks read, they cap it at 64 MiB unless
    ``GDAL_CACHEMAX`` is set in the environment. Once no block task is reading,
    the cache has its earlier size again.

    Raises
    ------
    WindowError
        If ``stride`` is not in ``1..chip_size``.
    BandCountError
        If the model takes other bands than ``raster_source`` has.
    ConfigError
        If ``raster_source`` is no raster source, ``chip_size``, ``batch_size`` or
        ``block_size`` is not an int >= 1, ``blend`` is no blend mode, ``dtype`` is
        not a float dtype, a custom model comes without ``model_factory``,
        or ``device`` is no torch device (or, without a dask.distributed client, one
        this machine lacks).

    Returns
    -------
    SemanticSegmentationLabels
        Lazy scores ``(class, y, x)`` and class ids ``(y, x)`` on the source's grid;
        NaN scores and the null class where the input is nodata.
    """
    stride = _check_arguments(
        raster_source, chip_size, stride, batch_size, block_size, blend, dtype
    )
    bundle, model_token = bundle_and_token(learner_or_bundle)
    cfg = SemanticSegmentationLearnerConfig.from_dict(read_bundle_config(bundle))
    if cfg.model.name == "custom" and model_factory is None:
        raise ConfigError(
            f"The model of {str(bundle)!r} is a custom nn.Module: workers cannot rebuild it "
            "from the config. Pass model_factory=... (a picklable zero-argument callable "
            "that builds the same architecture)."
        )
    cfg.check_source(raster_source, label=repr(raster_source))
    stats = cfg.norm_stats
    if stats is not None and len(stats.means) != raster_source.num_channels:
        raise BundleError(
            f"Model bundle {str(bundle)!r} normalises {len(stats.means)} bands, but "
            f"{raster_source!r} has {raster_source.num_channels}: every block would fail. "
            "Re-export the bundle with statistics of the bands the model takes."
        )
    height, width = raster_source.shape
    # Chips end on the scene's edge (every pixel predicted from real data), on an axis
    # the scene is shorter than a chip: padded there alone.
    rows, cols = (0 if chip_size <= length else None for length in (height, width))
    chip_grid = ChipGrid.plan((height, width), chip_size, stride, padding=(rows, cols))
    block = block_size or max(stride, (1024 // stride) * stride)
    classes = cfg.class_config.ensure_null_class()
    model = ModelRef.of(bundle, device, model_factory)
    if distributed_client() is None:  # this machine's device is the workers'
        check_device(device)
    run_block = partial(
        predict_block,
        source=raster_source,
        model=model,
        chip_grid=chip_grid,
        batch_size=batch_size,
        blend=blend,
    )

    def task(block_info: dict[Any, Any] | None = None) -> np.ndarray:
        return run_block(window_of_block(block_info))

    scores = da.map_blocks(
        task,
        chunks=((len(classes),), block_chunks(height, block), block_chunks(width, block)),
        dtype=np.float32,
        meta=np.array((), np.float32),
        name="geoxr-predict-"
        + tokenize(
            model_token,  # the weights: a bundle's bytes, a learner's config and state
            model.factory_token,  # another architecture on the same weights: other scores
            raster_source,
            chip_size,
            stride,
            blend,
            block,
        ),
    )
    grid = raster_source.grid

    def labels(scores: da.Array, **class_ids: xr.DataArray) -> SemanticSegmentationLabels:
        data = grid.wrap(
            scores, dims=("class", "y", "x"), name="scores", coords={"class": list(classes.names)}
        )
        return SemanticSegmentationLabels(
            grid=grid, class_config=cfg.class_config, scores=data, **class_ids
        )

    full = labels(scores)
    if np.dtype(dtype) == np.float32:
        return full
    # Smaller scores, the same class ids: those of the float32 scores, in which no near
    # tie has become an exact one.
    return labels(scores.astype(dtype), class_ids=full.class_ids)
