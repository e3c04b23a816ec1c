"""Cloud-Optimized GeoTIFF label outputs, written block by block and renamed when complete."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import DatasetWriter
from rasterio.windows import Window as RioWindow

from geoxr._files import write_atomically
from geoxr.errors import ConfigError, IncompleteOutputError, LabelsError, OutputPathError
from geoxr.grid import Window, non_integers
from geoxr.label import ClassConfig, SemanticSegmentationLabels
from geoxr.label.labels import class_ids_to_write
from geoxr.read import RasterioSource
from geoxr.read._gdal import read_once_block_cache
from geoxr.store._compute import stream_blocks
from geoxr.store._overviews import (
    aligned_tile,
    overview_factors,
    overview_vrt,
    pyramid,
    write_remaining_levels,
)
from geoxr.store._paths import check_output_path

__all__ = ["read_cog_labels", "write_cog_labels"]

CLASS_CONFIG_TAG = "GEOXR_CLASS_CONFIG"


@dataclass(frozen=True)
class _Output:
    """One COG to write: its path, the lazy array, its dtype, nodata and overviews."""

    path: Path
    array: da.Array
    dtype: str
    nodata: float
    average: bool  # overviews: mean ignoring NaN (scores), else nearest (class ids)


def _open_levels(
    output: _Output,
    paths: list[Path],
    *,
    labels: SemanticSegmentationLabels,
    factors: tuple[int, ...],
    tiles: list[int],
) -> list[DatasetWriter]:
    """Temporary tiled GeoTIFFs of each level of ``output`` (factor 1: full resolution)."""
    grid = labels.grid
    handles = []
    try:
        for factor, tile, level in zip(factors, tiles, paths, strict=True):
            handles.append(
                rasterio.open(
                    level,
                    "w",
                    driver="GTiff",
                    width=math.ceil(grid.width / factor),
                    height=math.ceil(grid.height / factor),
                    count=1 if output.array.ndim == 2 else output.array.shape[0],
                    dtype=output.dtype,
                    nodata=output.nodata,
                    crs=grid.crs,
                    transform=grid.transform * Affine.scale(factor),
                    tiled=True,
                    blockxsize=tile,
                    blockysize=tile,
                    # Files the COG is made from: fast to write, still compressed so
                    # they do not take the scene's raw size on disk.
                    compress="zstd",
                    zstd_level=1,
                    BIGTIFF="IF_SAFER",
                )
            )
    except Exception:
        for dst in handles:
            dst.close()
        raise
    handles[0].update_tags(**{CLASS_CONFIG_TAG: json.dumps(labels.class_config.to_dict())})
    return handles


def _block_levels(
    blocks: dict[str, np.ndarray],
    *,
    window: Window,
    block: tuple[int, int],
    averages: tuple[bool, ...],
    levels: int,
) -> list[list[np.ndarray]]:
    """Each output's block and its first ``levels`` overviews (a :func:`stream_blocks` function)."""
    out = []
    for value, average in zip(blocks.values(), averages, strict=True):
        value = value if value.ndim == 3 else value[None]
        out.append([value, *pyramid(value, levels, average=average)])
    return out


def _write_levels(
    handles: list[DatasetWriter],
    values: list[np.ndarray],
    *,
    window: Window,
    factors: tuple[int, ...],
) -> None:
    """Write a block's ``values`` at each level (the first ``len(values)`` of ``handles``)."""
    for factor, dst, value in zip(factors, handles, values, strict=False):
        origin = (window.col_off // factor, window.row_off // factor)
        dst.write(value, window=RioWindow(*origin, value.shape[-1], value.shape[-2]))


def _make_cog(
    source: Path, cog: Path, *, output: _Output, overviews: bool, blocksize: int
) -> None:
    """Lay ``source`` (with its overviews, if any) out as a DEFLATE-compressed COG."""
    # Float scores: the floating-point predictor makes DEFLATE worth it (about
    # 0.8 of the raw size where plain DEFLATE keeps it all), and level 1
    # compresses them as well as the default level 6, in 3/4 of the time.
    floats = {"predictor": 3, "level": 1} if output.dtype == "float32" else {}
    rasterio.shutil.copy(
        source,
        cog,
        driver="COG",
        compress="DEFLATE",
        blocksize=blocksize,
        num_threads="ALL_CPUS",  # compression on every core
        overviews="FORCE_USE_EXISTING" if overviews else "NONE",
        BIGTIFF="IF_SAFER",
        **floats,
    )


def _move_into_place(built: Path, final: Path) -> None:
    """Rename ``built`` to ``final``; across file systems, by a copy beside ``final`` first."""
    try:
        os.replace(built, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomically(final, lambda beside: shutil.copyfile(built, beside))


# Each tile is written once, then read once by the COG conversion: GDAL's block cache
# (5% of RAM by default) would keep them, growing with the scene, so it is capped while
# the COGs are written, as while prediction blocks read.
@read_once_block_cache()
def write_cog_labels(
    labels: SemanticSegmentationLabels,
    path: str | os.PathLike[str],
    *,
    scores_path: str | os.PathLike[str] | None = None,
    blocksize: int = 512,
    progress: bool = True,
) -> Path:
    """Write class ids (uint8, colour map from the class config) as a valid COG.

    Each block is written, as soon as it is computed, into a tiled temporary
    GeoTIFF (ZSTD level 1: fast to write), and so are its overview pixels
    (computed in the block's own task: the mean of the scores, ignoring NaN, and
    the nearest class id), one temporary GeoTIFF per overview level. GDAL's COG
    driver then takes those overviews as they are, compresses with DEFLATE on
    every core and lays the file out as a COG under a temporary name, renamed to
    ``path`` only when complete. Memory stays bounded by the blocks in flight,
    whatever the scene size; the temporary files take about as much disk again as
    the outputs. Runs on dask's local threaded scheduler or a ``dask.distributed``
    Client (blocks are then written here as they arrive).

    Parameters
    ----------
    labels : SemanticSegmentationLabels
        Usually lazy, from ``predict_scene``.
    path : str or path
        Output ``.tif`` for class ids. Null-class pixels are the file's nodata.
    scores_path : str or path, optional
        Also write the float32 class scores (one band per class) as a COG here.
    blocksize : int
        Internal tile size (a multiple of 16).
    progress : bool
        Show a progress bar.

    Raises
    ------
    OutputPathError
        Before any compute, if a directory is at ``path`` or ``scores_path``, a
        file is where one of their parent directories goes, or both are one path.
    LabelsError
        If ``scores_path`` is given for labels without scores.
    ConfigError
        If ``blocksize`` is not a positive multiple of 16.
    """
    path = Path(path)
    if non_integers([blocksize]) or blocksize < 16 or blocksize % 16:
        raise ConfigError(
            f"blocksize {blocksize!r}: COG tiles are a positive multiple of 16 pixels (GDAL's "
            "rule); give e.g. blocksize=512."
        )
    check_output_path(path, what="COG path")
    if scores_path is not None:
        check_output_path(Path(scores_path), what="Scores COG path")
        if Path(scores_path).absolute() == path.absolute():
            raise OutputPathError(
                f"scores_path {str(scores_path)!r} is the class ids' COG path: one would "
                "overwrite the other. Give the scores a path of their own."
            )
    ids_dtype = "uint8" if len(labels.class_config) <= 256 else "uint16"
    null = labels.null_class_id
    class_ids = class_ids_to_write(labels, str(path))
    outputs = [_Output(path, class_ids, ids_dtype, null, average=False)]
    if scores_path is not None:
        if labels.scores is None:
            raise LabelsError(
                f"scores_path={str(scores_path)!r} asks for the scores, but these labels have no "
                "scores (class ids only). Leave scores_path=None, or give labels with scores."
            )
        scores = da.asarray(labels.scores.data).astype("float32")
        outputs.append(_Output(Path(scores_path), scores, "float32", np.nan, average=True))
    overview_levels = overview_factors(labels.grid.width, labels.grid.height, blocksize)
    factors = (1, *overview_levels)
    tiles = [aligned_tile(class_ids.chunks, f, blocksize) for f in factors]
    # Levels the blocks fill whole tiles of are written from the blocks' tasks; any
    # after them (blocks of a size with few factors of 2) from the last of those.
    blockwise = next((k for k, tile in enumerate(tiles[1:]) if tile is None), len(tiles) - 1)
    work = path.with_name(f".{path.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        levels = [[work / f"{i}.{f}.tif" for f in factors] for i in range(len(outputs))]
        handles: list[list[DatasetWriter]] = []
        try:
            for output, paths in zip(outputs, levels, strict=True):
                handles.append(
                    _open_levels(
                        output,
                        paths,
                        labels=labels,
                        factors=factors,
                        tiles=[tile or blocksize for tile in tiles],
                    )
                )
            handles[0][0].write_colormap(
                1, {i: (*c, 255) for i, c in enumerate(labels.class_config.colors)}
            )

            def write(values: list[list[np.ndarray]], window: Window, block: object) -> None:
                for output_handles, output_values in zip(handles, values, strict=True):
                    _write_levels(output_handles, output_values, window=window, factors=factors)

            stream_blocks(
                partial(
                    _block_levels,
                    averages=tuple(output.average for output in outputs),
                    levels=blockwise,
                ),
                {str(i): output.array for i, output in enumerate(outputs)},
                write,
                progress=progress,
                desc=f"writing {path.name}",
            )
        finally:
            for dst in (dst for output_handles in handles for dst in output_handles):
                dst.close()
        cogs = []
        for index, (output, paths) in enumerate(zip(outputs, levels, strict=True)):
            write_remaining_levels(paths, blockwise + 1, average=output.average)
            source = paths[0]
            if overview_levels:
                source = overview_vrt(paths[0], paths[1:], paths[0].with_suffix(".vrt"))
            cog = work / f"{index}.cog"  # two outputs may share a file name
            _make_cog(
                source, cog, output=output, overviews=bool(overview_levels), blocksize=blocksize
            )
            cogs.append((cog, output.path))
        for cog, final in reversed(cogs):  # every COG built; scores first, class ids last
            final.parent.mkdir(parents=True, exist_ok=True)
            _move_into_place(cog, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def read_cog_labels(
    path: str | os.PathLike[str], *, scores_path: str | os.PathLike[str] | None = None
) -> SemanticSegmentationLabels:
    """Open class ids (and optionally scores) written by :func:`write_cog_labels`, lazily."""
    path = Path(path)
    if not path.is_file():
        raise IncompleteOutputError(
            f"No COG at {str(path)!r}; a write that did not finish leaves only a hidden "
            f"'.{path.name}.partial' folder. Run the prediction again."
        )
    with rasterio.open(path) as ds:
        tag = ds.tags().get(CLASS_CONFIG_TAG)
    if tag is None:
        raise IncompleteOutputError(
            f"{str(path)!r} was not written by geoxr (no class config tag)."
        )
    class_config = ClassConfig.from_dict(json.loads(tag))
    ids_source = RasterioSource(path, nodata=None)
    ids = ids_source.data.isel(band=0, drop=True).rename("class_id")
    scores = None
    if scores_path is not None:
        scores = RasterioSource(scores_path).data.rename({"band": "class"}).rename("scores")
        scores = scores.assign_coords({"class": list(class_config.names)})
    return SemanticSegmentationLabels(
        grid=ids_source.grid, class_config=class_config, scores=scores, class_ids=ids
    )
