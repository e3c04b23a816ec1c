"""Cloud-Optimized GeoTIFF label outputs, written block by block and renamed when complete."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling

from geoxr.errors import IncompleteOutputError
from geoxr.grid import Window
from geoxr.label import ClassConfig, SemanticSegmentationLabels
from geoxr.read import RasterioSource
from geoxr.store._compute import stream_blocks

__all__ = ["read_cog_labels", "write_cog_labels"]

CLASS_CONFIG_TAG = "GEOXR_CLASS_CONFIG"


def _block_values(
    blocks: dict[str, np.ndarray], *, window: Window, block: tuple[int, int]
) -> list[np.ndarray]:
    """The blocks of every output, in order (a :func:`stream_blocks` block function)."""
    return list(blocks.values())


def _profile(
    labels: SemanticSegmentationLabels, *, count: int, dtype: str, blocksize: int
) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "width": labels.grid.width,
        "height": labels.grid.height,
        "count": count,
        "dtype": dtype,
        "crs": labels.grid.crs,
        "transform": labels.grid.transform,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        # A temporary file the COG is made from: fast to write (blocks are written one
        # at a time), still compressed so it does not take the scene's raw size on disk.
        "compress": "zstd",
        "zstd_level": 1,
        "BIGTIFF": "IF_SAFER",
    }


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
    GeoTIFF (ZSTD level 1: fast to write); GDAL's COG driver then adds overviews,
    compresses with DEFLATE on every core and lays the file out as a COG under a
    temporary name, renamed to ``path`` only when complete. Memory stays bounded by
    the blocks in flight, whatever the scene size; the temporary files take about
    as much disk again as the outputs. Runs on dask's local threaded scheduler or a
    ``dask.distributed`` Client (blocks are then written here as they arrive).

    Parameters
    ----------
    labels : SemanticSegmentationLabels
        Usually lazy, from ``predict_scene``.
    path : str or path
        Output ``.tif`` for class ids. Null-class pixels are the file's nodata.
    scores_path : str or path, optional
        Also write the float32 class scores (one band per class) as a COG here.
    blocksize : int
        Internal tile size.
    progress : bool
        Show a progress bar.
    """
    path = Path(path)
    ids_dtype = "uint8" if len(labels.class_config) <= 256 else "uint16"
    outputs = [(path, labels.class_ids.data, ids_dtype, Resampling.nearest)]
    if scores_path is not None:
        if labels.scores is None:
            raise ValueError("These labels have no scores; leave scores_path=None.")
        outputs.append(
            (
                Path(scores_path),
                labels.scores.data.astype("float32"),
                "float32",
                Resampling.average,
            )
        )
    work = path.with_name(f".{path.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        tiffs = [work / f"{i}.tif" for i in range(len(outputs))]
        config_tag = json.dumps(labels.class_config.to_dict())
        handles = []
        for tiff, (_, array, dtype, _) in zip(tiffs, outputs, strict=True):
            count = 1 if array.ndim == 2 else array.shape[0]
            profile = _profile(labels, count=count, dtype=dtype, blocksize=blocksize)
            profile["nodata"] = np.nan if dtype == "float32" else labels.null_class_id
            dst = rasterio.open(tiff, "w", **profile)
            dst.update_tags(**{CLASS_CONFIG_TAG: config_tag})
            handles.append(dst)
        try:
            handles[0].write_colormap(
                1, {i: (*c, 255) for i, c in enumerate(labels.class_config.colors)}
            )

            def write(values: list[np.ndarray], window: Window, block: tuple[int, int]) -> None:
                for dst, value in zip(handles, values, strict=True):
                    dst.write(
                        value if value.ndim == 3 else value[None], window=window.to_rasterio()
                    )

            stream_blocks(
                _block_values,
                {str(i): array for i, (_, array, _, _) in enumerate(outputs)},
                write,
                progress=progress,
                desc=f"writing {path.name}",
            )
        finally:
            for dst in handles:
                dst.close()
        cogs = []
        for tiff, (final, _, dtype, resampling) in zip(tiffs, outputs, strict=True):
            cog = work / f"{final.name}.cog"
            # Float scores: the floating-point predictor makes DEFLATE worth it (about
            # 0.8 of the raw size where plain DEFLATE keeps it all), and level 1
            # compresses them as well as the default level 6, in 3/4 of the time.
            floats = {"predictor": 3, "level": 1} if dtype == "float32" else {}
            rasterio.shutil.copy(
                tiff,
                cog,
                driver="COG",
                compress="DEFLATE",
                blocksize=blocksize,
                num_threads="ALL_CPUS",  # compression on every core
                overview_resampling=resampling.name,
                BIGTIFF="IF_SAFER",
                **floats,
            )
            cogs.append((cog, final))
        for cog, final in reversed(cogs):  # every COG built; scores first, class ids last
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(cog, final)
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
