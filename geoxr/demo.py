"""A generated demo scene: an RGB GeoTIFF of buildings and ponds on fields, with its labels.

The quickstart trains and predicts on it when no scene is given. Everything is
drawn from one seed, block by block, so scenes of any size can be written in
bounded memory:

- classes: 0 ``background`` (fields: smooth green-brown texture), 1 ``building``
  (bright grey rectangles with a darker roof edge), 2 ``water`` (dark blue discs);
- image: 3-band ``uint8``, DEFLATE, 256-pixel tiles, EPSG:32616 at 0.5 m;
- labels: 1-band ``uint8`` class ids on the same grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize

from geoxr.grid import Grid, Window

__all__ = ["DEMO_CLASSES", "make_demo_scene"]

DEMO_CLASSES = ("background", "building", "water")
_BLOCK = 1024


def _features(size: int, rng: np.random.Generator) -> tuple[list[shapely.Geometry], list[int]]:
    """Building rectangles and water discs in pixel coordinates (x right, y down)."""
    area = size * size
    shapes: list[shapely.Geometry] = []
    classes: list[int] = []
    for _ in range(max(1, area // 60_000)):
        x, y = rng.uniform(0, size, 2)
        shapes.append(shapely.Point(x, y).buffer(rng.uniform(10, 45)))
        classes.append(2)
    for _ in range(max(1, area // 9_000)):
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(8, 30, 2)
        box = shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        shapes.append(shapely.affinity.rotate(box, rng.uniform(0, 90)))
        classes.append(1)
    return shapes, classes


def _render(
    labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """RGB pixels for a block of class ids, with texture and noise."""
    field = (
        0.5
        + 0.25 * np.sin(rows / 37.0) * np.cos(cols / 53.0)
        + 0.25 * np.sin((rows + cols) / 91.0)
    )
    base = np.stack([90 + 60 * field, 120 + 50 * field, 60 + 30 * field])
    colours = {1: (205, 200, 195), 2: (30, 55, 105)}
    for class_id, rgb in colours.items():
        where = labels == class_id
        for band, value in enumerate(rgb):
            base[band][where] = value
    noise = rng.normal(0, 9, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def make_demo_scene(
    directory: str | os.PathLike[str], *, size: int = 1024, seed: int = 0, name: str = "demo"
) -> tuple[Path, Path]:
    """Write ``{name}.tif`` (image) and ``{name}-labels.tif`` (class ids) into ``directory``.

    Parameters
    ----------
    directory : str or path
        Output folder (created).
    size : int
        Width and height in pixels.
    seed : int
        Seed of the features and the noise.
    name : str
        File name stem.

    Returns
    -------
    (Path, Path)
        Image and label paths.

    Examples
    --------
    >>> image, labels = make_demo_scene("demo", size=256)
    >>> src = geoxr.RasterioSource(image)
    >>> src.shape, src.num_channels, src.crs.to_epsg()
    ((256, 256), 3, 32616)
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    image_path, label_path = out / f"{name}.tif", out / f"{name}-labels.tif"
    rng = np.random.default_rng(seed)
    shapes, classes = _features(size, rng)
    tree = shapely.STRtree(shapes)
    transform = Affine(0.5, 0, 733_000.0, 0, -0.5, 3_726_000.0)
    grid = Grid(CRS.from_epsg(32616), transform, (size, size))
    pixel_grid = Grid(grid.crs, Affine.identity(), grid.shape)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "crs": grid.crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "dtype": "uint8",
    }
    with (
        rasterio.open(image_path, "w", count=3, **profile) as image,
        rasterio.open(label_path, "w", count=1, **profile) as label,
    ):
        for row in range(0, size, _BLOCK):
            for col in range(0, size, _BLOCK):
                window = Window(row, col, min(_BLOCK, size - row), min(_BLOCK, size - col))
                box = shapely.box(window.xmin, window.ymin, window.xmax, window.ymax)
                hits = np.sort(tree.query(box))
                ids = np.zeros(window.shape, np.uint8)
                if len(hits):
                    ids = rasterize(
                        zip((shapes[i] for i in hits), (classes[i] for i in hits), strict=True),
                        out=ids,
                        transform=pixel_grid.window_transform(window),
                    )
                rows, cols = np.mgrid[window.ymin : window.ymax, window.xmin : window.xmax]
                block_rng = np.random.default_rng([seed, row, col])
                image.write(_render(ids, rows, cols, block_rng), window=window.to_rasterio())
                label.write(ids[None], window=window.to_rasterio())
    return image_path, label_path
