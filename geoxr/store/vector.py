"""Class regions as polygons: polygonized per block, merged, written with geopandas."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio.crs import CRS

from geoxr._files import write_atomically
from geoxr._rasterio_features import shapes
from geoxr.errors import ClassConfigError, ConfigError, OutputPathError
from geoxr.grid import Grid, Window, non_integers
from geoxr.label import SemanticSegmentationLabels
from geoxr.store._compute import compute_blocks, map_blocks_delayed
from geoxr.store._paths import check_output_path

__all__ = ["check_vector_path", "polygonize_block", "vector_class_ids", "write_vector_labels"]

_DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}
_PARQUET = (".parquet", ".geoparquet")


def _vector_crs(grid: Grid) -> str:
    """The grid's CRS as ``AUTHORITY:code`` when it has one (so GeoJSON can name it), else WKT."""
    authority = grid.crs.to_authority()
    return ":".join(authority) if authority is not None else grid.crs.to_wkt()


def polygonize_block(
    ids: np.ndarray, grid: Grid, window: Window, class_ids: Sequence[int]
) -> gpd.GeoDataFrame:
    """Polygons of each wanted class in one block of class ids (pixel-exact outlines)."""
    transform = grid.window_transform(window)
    found: list[int] = []
    polygons: list[shapely.Geometry] = []
    for class_id in class_ids:
        inside = (ids == class_id).astype(np.uint8)
        if inside.any():
            for geom, value in shapes(inside, transform=transform):
                if value == 1:
                    found.append(int(class_id))
                    polygons.append(shapely.geometry.shape(geom))
    return _frame(found, polygons, crs=_vector_crs(grid))


def _frame(
    class_ids: Sequence[int], geometries: Sequence[shapely.Geometry], *, crs: str
) -> gpd.GeoDataFrame:
    """Polygons and their class ids, as int64 whether there are any or none."""
    return gpd.GeoDataFrame(
        {"class_id": np.asarray(class_ids, np.int64)}, geometry=list(geometries), crs=crs
    )


def _polygonize_ids_block(
    blocks: dict[str, np.ndarray],
    *,
    window: Window,
    block: tuple[int, int],
    grid: Grid,
    class_ids: Sequence[int],
) -> gpd.GeoDataFrame:
    """:func:`polygonize_block` as a :func:`map_blocks_delayed` block function."""
    return polygonize_block(blocks["ids"], grid, window, class_ids)


def vector_class_ids(
    labels: SemanticSegmentationLabels,
    class_ids: Iterable[int | str] | None,
    *,
    simplify: float = 0.0,
    min_area: float = 0.0,
) -> list[int]:
    """The class ids :func:`write_vector_labels` polygonizes: ids or names, the null class left out.

    Raises
    ------
    ClassConfigError
        If ``class_ids`` names a class the labels' class config does not have.
    ConfigError
        If ``simplify`` or ``min_area`` is not a number >= 0.

    Examples
    --------
    >>> from geoxr.grid import Grid
    >>> from geoxr.label import ClassConfig
    >>> from affine import Affine
    >>> from rasterio.crs import CRS
    >>> grid = Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 2), (2, 2))
    >>> labels = SemanticSegmentationLabels(
    ...     grid=grid,
    ...     class_config=ClassConfig(["land", "forest", "water"]),
    ...     class_ids=grid.wrap(np.zeros((2, 2), np.uint8), dims=("y", "x")),
    ... )
    >>> vector_class_ids(labels, [1, "water"]), vector_class_ids(labels, None)
    ([1, 2], [0, 1, 2])
    """
    for name, value in (("simplify", simplify), ("min_area", min_area)):
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0 (map units), got {value!r}.")
    names = list(labels.class_config.names)
    chosen = range(len(names)) if class_ids is None else class_ids
    ids: list[int] = []
    unknown: list[object] = []
    for choice in chosen:
        if isinstance(choice, str) and choice in names:
            ids.append(names.index(choice))
        elif (
            not isinstance(choice, str | bool)
            and not non_integers([choice])
            and 0 <= choice < len(names)
        ):
            ids.append(int(choice))
        else:
            unknown.append(choice)
    if unknown:
        raise ClassConfigError(
            f"class_ids {unknown!r} are neither ids (0..{len(names) - 1}) nor names of the "
            f"labels' classes {names}. Give ids or names of those classes."
        )
    return [i for i in dict.fromkeys(ids) if i != labels.null_class_id]  # each class once


def write_vector_labels(
    labels: SemanticSegmentationLabels,
    path: str | os.PathLike[str],
    *,
    class_ids: Sequence[int | str] | None = None,
    simplify: float = 0.0,
    min_area: float = 0.0,
) -> Path:
    """Polygonize class regions and write them as GeoJSON, GeoParquet or GeoPackage.

    Each dask block is polygonized in its own task; regions cut by block edges
    are then merged per class, so the output does not depend on the chunking.

    Parameters
    ----------
    labels : SemanticSegmentationLabels
        Labels with class ids.
    path : str or path
        ``.geojson``, ``.parquet``/``.geoparquet`` or ``.gpkg``; in the scene CRS.
    class_ids : sequence of int or str, optional
        Classes to write, by id or name; default all but the null class.
    simplify : float
        Douglas-Peucker tolerance in map units (0: pixel-exact outlines).
    min_area : float
        Drop polygons smaller than this, in square map units.

    Raises
    ------
    OutputPathError
        Before any compute, if ``path`` is not one :func:`check_vector_path` takes.
    ClassConfigError
        If ``class_ids`` names a class the labels' class config does not have.
    ConfigError
        If ``simplify`` or ``min_area`` is not a number >= 0.
    """
    path = check_vector_path(path, labels.grid.crs)
    suffix = path.suffix.lower()
    wanted = vector_class_ids(labels, class_ids, simplify=simplify, min_area=min_area)
    tasks = map_blocks_delayed(
        partial(_polygonize_ids_block, grid=labels.grid, class_ids=wanted),
        {"ids": da.asarray(labels.class_ids.data)},
    )
    results = compute_blocks(tasks, progress=False, desc="polygonizing")
    parts = [p for p in results.values() if len(p)]
    crs = _vector_crs(labels.grid)
    if parts:
        merged = pd.concat(parts, ignore_index=True).dissolve(by="class_id", as_index=False)
        frame = merged.explode(index_parts=False, ignore_index=True)
    else:
        frame = _frame([], [], crs=crs)
    if simplify > 0:
        frame["geometry"] = frame.geometry.simplify(simplify, preserve_topology=True)
    if min_area > 0:
        frame = frame[frame.geometry.area >= min_area]
    names = list(labels.class_config.names)
    # str (not object: empty, that was written as a float column), as from a file
    frame["class_name"] = pd.Series(
        [names[i] for i in frame["class_id"]], index=frame.index, dtype=str
    )
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        if suffix in _PARQUET:
            frame.to_parquet(tmp)
        else:
            # Polygons, even with none to infer that from.
            frame.to_file(tmp, driver=_DRIVERS[suffix], layer=path.stem, geometry_type="Polygon")

    return write_atomically(path, write)


def check_vector_path(path: str | os.PathLike[str], crs: CRS | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path`, if :func:`write_vector_labels` can write there.

    Parameters
    ----------
    path : str or path
        Where the vector labels go.
    crs : rasterio.crs.CRS, optional
        The labels' CRS, which the file must be able to name.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputPathError
        If its suffix is not that of a format written, it is a directory, or it
        is in a file; or it is GeoJSON and ``crs`` has no authority code (GeoJSON
        names a CRS by its code alone: a reader would take the coordinates for WGS 84).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*_DRIVERS, *_PARQUET):
        raise OutputPathError(
            f"Cannot write vector labels to {str(path)!r}: use a .geojson, .gpkg, .parquet or "
            ".geoparquet file name."
        )
    if crs is not None and _DRIVERS.get(suffix) == "GeoJSON" and crs.to_authority() is None:
        raise OutputPathError(
            f"Cannot write vector labels to {str(path)!r}: GeoJSON names a CRS by an "
            "authority's code alone (EPSG:..., ESRI:...), and the labels' CRS has none, so "
            "readers would take the coordinates for longitude and latitude. Write a .gpkg or "
            ".parquet file, which keep any CRS."
        )
    check_output_path(path, what="Vector labels path")
    return path
