"""SemanticSegmentationLabels: class scores and/or class ids over a scene, lazy when predicted."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import shapely
import xarray as xr
from dask.base import tokenize

from geoxr.errors import ClassConfigError, CRSMismatchError, LabelsError
from geoxr.grid import Grid, Window, aoi_union, window_of_block
from geoxr.label.blend import BlendMode, ScoreAccumulator
from geoxr.label.class_config import ClassConfig
from geoxr.label.rasterize import aoi_window_mask

__all__ = [
    "SemanticSegmentationLabels",
    "checked_class_ids",
    "class_ids_from_scores",
    "class_ids_to_write",
]


def class_ids_from_scores(scores: np.ndarray, null_class_id: int) -> np.ndarray:
    """Arg-max class per pixel of ``(class, y, x)`` scores, never the null class.

    The null class means "no prediction": it wins only where every other score is
    NaN (or -inf, which no score can beat either). Ties keep the lower class id.
    A few whole-plane passes per class over ``(y, x)``, none of them masked: masked
    copies (``np.copyto(where=)``, boolean indexing) cost 6-13 times as much on a
    3 x 1024² block of noisy scores (11 ms against 0.9 ms).

    Examples
    --------
    >>> s = np.array([[[0.2, np.nan]], [[0.7, np.nan]], [[0.9, np.nan]]], dtype=np.float32)
    >>> class_ids_from_scores(s, 2)
    array([[1, 2]], dtype=uint8)
    """
    dtype = np.dtype(np.uint8 if scores.shape[0] <= 256 else np.int32)
    ids = np.full(scores.shape[1:], null_class_id, dtype)
    # float32 at least; float64 scores keep their precision
    best = np.full(scores.shape[1:], -np.inf, np.result_type(scores.dtype, np.float32))
    better = np.empty(scores.shape[1:], bool)
    step = np.empty(scores.shape[1:], dtype)
    for class_id in range(scores.shape[0]):
        if class_id == null_class_id:
            continue
        np.greater(scores[class_id], best, out=better)  # NaN never compares greater
        # ids = class_id where better, as arithmetic: ids -= (ids - class_id) * better
        # (wrapping around in unsigned ids is exact).
        np.subtract(ids, dtype.type(class_id), out=step)
        np.multiply(step, better, out=step)
        np.subtract(ids, step, out=ids)
        np.fmax(best, scores[class_id], out=best)  # a NaN score leaves best as it is
    return ids


def yx_class_ids(ids: xr.DataArray, label: str) -> xr.DataArray:
    """``(y, x)`` class ids: ``ids`` itself, or its one band (a label raster as it opens).

    Examples
    --------
    >>> one_band = xr.DataArray(np.zeros((1, 2, 3), np.uint8), dims=("band", "y", "x"))
    >>> yx_class_ids(one_band, "ids").dims
    ('y', 'x')
    """
    if "band" in ids.dims and ids.sizes["band"] == 1:
        ids = ids.isel(band=0, drop=True)
    if ids.dims != ("y", "x"):
        raise LabelsError(
            f"{label} {ids.name or 'DataArray'!r} has dims {ids.dims}; expected class ids on "
            "('y', 'x'), or one band ('band', 'y', 'x'). Select the band, e.g. .isel(band=0)."
        )
    return ids


def checked_class_ids(
    ids: Any, class_config: ClassConfig, *, label: str, fix: str, skip: Sequence[int] = ()
) -> da.Array:
    """``ids`` as a dask array, each block checked against ``class_config`` as it is computed.

    An id the class config does not have (other than those in ``skip``) raises a
    ClassConfigError naming ``label``, instead of passing on (a COG's uint8 would
    wrap it round; a confusion matrix would drop it). NaN is no id: it passes.
    """
    arr = da.asarray(ids)
    return arr.map_blocks(
        _checked_block,
        class_config=class_config,
        label=label,
        fix=fix,
        skip=tuple(skip),
        # The label only names the input in an error: the same ids checked are one task,
        # wherever they are written (a store's job must not depend on how its path is spelt).
        name="geoxr-checked-ids-" + tokenize(arr.name, class_config, fix, tuple(skip)),
    )


def class_ids_to_write(labels: SemanticSegmentationLabels, output: str) -> da.Array:
    """What a writer writes of ``labels``' class ids: checked block by block (see above).

    Float ids (a raster read with ``masked=True``) become integers, NaN the null class;
    ids that are not whole numbers raise a ClassConfigError.
    """
    label = f"Labels written to {output!r}"
    ids = checked_class_ids(
        labels.class_ids.data,
        labels.class_config,
        label=label,
        fix="Give class ids that are positions in the labels' class config.",
    )
    if ids.dtype.kind != "f":
        return ids
    dtype = np.dtype(np.uint8 if len(labels.class_config) <= 256 else np.uint16)  # as COGs
    return da.map_blocks(
        _integer_ids,
        ids,
        null_class_id=labels.null_class_id,
        label=label,
        into=dtype,
        dtype=dtype,
        name="geoxr-integer-ids-" + tokenize(ids.name, labels.null_class_id, dtype),
    )


def _integer_ids(
    block: np.ndarray, *, null_class_id: int, label: str, into: np.dtype
) -> np.ndarray:
    """Float class ids as integers: NaN (no label) the null class; fractions refused."""
    missing = np.isnan(block)
    fractions = block[~missing & (block != np.round(block))]
    if fractions.size:
        raise ClassConfigError(
            f"{label}: class ids {np.unique(fractions)[:10].tolist()} are not whole numbers. "
            "Give integer class ids (NaN where there is no label)."
        )
    return np.where(missing, null_class_id, block).astype(into)


def _checked_block(
    block: np.ndarray, *, class_config: ClassConfig, label: str, fix: str, skip: tuple[int, ...]
) -> np.ndarray:
    class_config.check_class_ids(block, label=label, fix=fix, skip=skip)
    return block


def _class_ids_of_block(scores: np.ndarray, null_class_id: int) -> np.ndarray:
    """:func:`class_ids_from_scores` of one block, as ``(1, y, x)``."""
    return class_ids_from_scores(scores, null_class_id)[None]


def _window_values(data: xr.DataArray, window: Window, fill: float) -> np.ndarray:
    """``data``'s ``(..., y, x)`` values of ``window``, ``fill`` past its edge, computed."""
    height, width = data.shape[-2:]
    inner = window.intersection(Window(0, 0, height, width))
    if inner == window:
        return np.asarray(data.isel(window.isel()).values)
    out = np.full((*data.shape[:-2], *window.shape), fill, data.dtype)
    if inner is not None:
        out[(..., *inner.slices_in(window))] = data.isel(inner.isel()).values
    return out


class SemanticSegmentationLabels:
    """Per-pixel labels of a scene: scores ``(class, y, x)`` and class ids ``(y, x)``.

    Predicted labels are lazy (dask): nothing is computed until written or
    asked for. Class ids default to the arg-max of the scores, with the null
    class where there is no score (input nodata, outside the AOI).

    Parameters
    ----------
    grid : Grid
        The scene grid both arrays are on.
    class_config : ClassConfig
        The classes (scores have one channel per class, null included).
    scores : xarray.DataArray, optional
        ``(class, y, x)`` float scores, NaN where there is no prediction.
    class_ids : xarray.DataArray, optional
        ``(y, x)`` class ids. Give scores, class ids or both.
    """

    def __init__(
        self,
        *,
        grid: Grid,
        class_config: ClassConfig,
        scores: xr.DataArray | None = None,
        class_ids: xr.DataArray | None = None,
    ) -> None:
        if scores is None and class_ids is None:
            raise LabelsError(
                "SemanticSegmentationLabels got neither scores nor class_ids; give scores=, "
                "class_ids= or both."
            )
        self.grid = grid
        self.class_config = class_config.ensure_null_class()
        self.null_class_id = class_config.ignore_class_id
        self.scores = scores
        if class_ids is not None:
            class_ids = yx_class_ids(class_ids, "Labels class_ids")
        self._check_grid("class_ids", class_ids)
        self._class_ids = class_ids

    def _check_grid(self, name: str, arr: xr.DataArray | None) -> None:
        if arr is not None and not Grid.from_dataarray(arr).aligned_with(self.grid):
            raise CRSMismatchError(
                f"Labels {name} are on {Grid.from_dataarray(arr)}, expected the scene grid "
                f"{self.grid}. Reproject or slice them onto the scene grid first."
            )

    @property
    def scores(self) -> xr.DataArray | None:
        """``(class, y, x)`` scores, if any; class ids not given are the arg-max of the latest."""
        return self._scores

    @scores.setter
    def scores(self, scores: xr.DataArray | None) -> None:
        self._check_grid("scores", scores)
        n = len(self.class_config)
        if scores is not None and (scores.dims[1:] != ("y", "x") or scores.shape[0] != n):
            raise LabelsError(
                f"Scores of shape {scores.shape} {scores.dims}: expected ({n}, y, x), one "
                f"channel per class of {list(self.class_config.names)} (null class included)."
            )
        self._scores = scores
        self._argmax_ids: xr.DataArray | None = None  # of these scores, when asked for

    @property
    def class_ids(self) -> xr.DataArray:
        """``(y, x)`` class ids (lazy arg-max of the scores unless given)."""
        if self._class_ids is not None:
            return self._class_ids
        if self._argmax_ids is None:
            assert self.scores is not None
            scores = da.asarray(self.scores.data).rechunk({0: -1})
            # The class axis is kept (length 1) and indexed away: dropping it in
            # map_blocks would make dask copy each block of scores before the call.
            dtype = np.uint8 if len(self.class_config) <= 256 else np.int32
            ids = da.map_blocks(
                _class_ids_of_block,
                scores,
                self.null_class_id,
                chunks=((1,), *scores.chunks[1:]),
                dtype=dtype,
                meta=np.empty((0, 0, 0), dtype),
            )[0]
            wrapped = self.grid.wrap(ids, dims=("y", "x"), name="class_id")
            self._argmax_ids = wrapped.rio.write_nodata(self.null_class_id, encoded=False)
        return self._argmax_ids

    def __getitem__(self, window: Window) -> np.ndarray:
        """Class ids of one window, computed: :meth:`get_label_arr`."""
        return self.get_label_arr(window)

    def get_label_arr(self, window: Window | None = None) -> np.ndarray:
        """``(y, x)`` class ids of ``window`` (default: the whole scene), computed.

        Pixels of the window past the scene's edge get the null class, as label
        sources and training chips give them.

        Examples
        --------
        >>> from affine import Affine
        >>> from rasterio.crs import CRS
        >>> g = Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 4), (4, 4))
        >>> ids = g.wrap(np.ones((4, 4), np.uint8), dims=("y", "x"), name="class_id")
        >>> labels = SemanticSegmentationLabels(
        ...     grid=g, class_config=ClassConfig(["a", "b"]), class_ids=ids)
        >>> labels.get_label_arr(Window(2, 2, 2, 3)).tolist()
        [[1, 1, 2], [1, 1, 2]]
        """
        return _window_values(self.class_ids, window or self.grid.extent, self.null_class_id)

    def get_score_arr(self, window: Window | None = None) -> np.ndarray:
        """``(class, y, x)`` scores of ``window`` (default: the whole scene), computed.

        Scores past the scene's edge are NaN.
        """
        if self.scores is None:
            raise LabelsError(
                "These labels hold class ids only, no scores; predict with predict_scene, or "
                "read a store written with scores (write_scores=True)."
            )
        return _window_values(self.scores, window or self.grid.extent, np.nan)

    @classmethod
    def from_predictions(
        cls,
        windows: Sequence[Window],
        predictions: Iterable[np.ndarray],
        *,
        grid: Grid,
        class_config: ClassConfig,
        blend: BlendMode = "cosine",
    ) -> SemanticSegmentationLabels:
        """Assemble per-window scores (e.g. from ``Learner.predict_dataset``) in memory.

        ``predictions`` holds one ``(class, h, w)`` array per window, in the
        windows' order, or the ``(window, scores)`` pairs ``predict_dataset``
        yields (each window must be the one at its place in ``windows``).
        Overlapping windows are blended with smooth weights, as block-wise
        prediction does. For scenes too big for memory, use ``predict_scene``.

        Examples
        --------
        >>> from affine import Affine
        >>> from rasterio.crs import CRS
        >>> g = Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 4), (4, 4))
        >>> ws = geoxr.sliding_windows(g.shape, 2, 2)
        >>> preds = [np.stack([np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]) for _ in ws]
        >>> labels = SemanticSegmentationLabels.from_predictions(
        ...     ws, preds, grid=g, class_config=ClassConfig(["a", "b"]))
        >>> labels.class_ids.values.tolist()[0]
        [1, 1, 1, 1]
        """
        classes = class_config.ensure_null_class()
        n = len(classes)
        acc = ScoreAccumulator(n, grid.extent, chips=windows, blend=blend)
        pairs = itertools.zip_longest(windows, predictions, fillvalue=None)
        for matched, (window, chip_scores) in enumerate(pairs):
            if window is None or chip_scores is None:
                raise LabelsError(
                    f"{len(windows)} windows but {'fewer' if window is not None else 'more'} "
                    "predictions; give one prediction per window, in the windows' order "
                    f"(the first {matched} matched)."
                )
            if (
                isinstance(chip_scores, tuple)
                and chip_scores
                and isinstance(chip_scores[0], Window)
            ):
                given, chip_scores = chip_scores  # predict_dataset's (window, scores)
                if given != window:
                    raise LabelsError(
                        f"Prediction {matched} is for {given}, but window {matched} is {window}; "
                        "give the predictions in the windows' order."
                    )
            chip_scores = np.asarray(chip_scores, np.float32)  # a nested list, a tensor
            if chip_scores.shape != (n, *window.shape):
                raise LabelsError(
                    f"Prediction for {window} has shape {chip_scores.shape}; expected "
                    f"{(n, *window.shape)} (one channel per class, null class included)."
                )
            acc.add(window, chip_scores)
        blended = grid.wrap(
            acc.result(),
            dims=("class", "y", "x"),
            name="scores",
            coords={"class": list(classes.names)},
        )
        return cls(grid=grid, class_config=class_config, scores=blended)

    def filter_by_aoi(
        self, aoi_polygons: shapely.Geometry | Iterable[shapely.Geometry]
    ) -> SemanticSegmentationLabels:
        """Labels with scores NaN and class ids null outside the AOI (lazy, per block).

        ``aoi_polygons``: a Polygon, a sequence of them, or a GeoSeries or GeoDataFrame
        (reprojected to the labels' CRS), as :class:`~geoxr.Scene` takes them.
        """
        grid = self.grid
        aoi = aoi_union(aoi_polygons, name="AOI", grid=grid)

        def outside(block_info: dict[Any, Any] | None = None) -> np.ndarray:
            return aoi_window_mask(aoi, grid, window_of_block(block_info))

        ids = self.class_ids
        ids_data = da.asarray(ids.data)
        mask = da.map_blocks(outside, chunks=ids_data.chunks, dtype=bool, meta=np.array((), bool))
        new_ids = ids.copy(data=da.where(mask, self.null_class_id, ids_data).astype(ids.dtype))
        new_scores = None
        if self.scores is not None:
            new_scores = self.scores.where(~xr.DataArray(mask, dims=("y", "x")))
        return SemanticSegmentationLabels(
            grid=grid, class_config=self.class_config, scores=new_scores, class_ids=new_ids
        )

    def save(self, uri: str | os.PathLike[str], **store_options: Any) -> Path:
        """Write these labels to ``uri`` (``*.zarr`` or ``*.tif``), block by block.

        Short for ``SemanticSegmentationLabelStore(uri, **store_options).save(labels)``;
        the options (``write_scores``, ``vector_output``, ``resume``, ``progress``)
        are the store's. Returns the path written.
        """
        from geoxr.store import SemanticSegmentationLabelStore  # the store imports labels

        return SemanticSegmentationLabelStore(uri, **store_options).save(self)

    def __repr__(self) -> str:
        parts = [
            p
            for p, a in (("scores", self.scores), ("class_ids", self._class_ids))
            if a is not None
        ]
        return f"SemanticSegmentationLabels({'+'.join(parts)}, shape={self.grid.shape})"
