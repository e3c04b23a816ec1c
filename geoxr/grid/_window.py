"""Pixel windows and georeferenced grids: the only owner of pixel <-> map maths."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.windows
import rioxarray  # noqa: F401  (registers the .rio accessor)
import shapely
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from geoxr.errors import NoGeoreferenceError, WindowError

__all__ = ["Grid", "Window", "non_integers"]


def non_integers(values: Iterable[object]) -> list[object]:
    """The items of ``values`` that are not Python or numpy integers, in order.

    Pixel offsets, sizes and band indices are refused, not truncated, when they are
    floats (``int(1.7)`` is 1) or bools (``True`` is an ``int`` to Python).

    Examples
    --------
    >>> non_integers([0, np.int64(2), 2.0, True, 1.5])
    [2.0, True, 1.5]
    """
    return [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer)]


def _apply(transform: Affine, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel ``(cols, rows)`` through an affine transform, element-wise."""
    t = transform
    cols, rows = np.asarray(cols, float), np.asarray(rows, float)
    return t.a * cols + t.b * rows + t.c, t.d * cols + t.e * rows + t.f


@dataclass(frozen=True, slots=True)
class Window:
    """A pixel box on a scene grid: row/column offsets and sizes.

    Offsets may be negative and the box may reach past the scene: such windows
    are read padded and masked. ``ymin/xmin/ymax/xmax`` give Raster Vision's
    ``Box`` view of the same box.

    Parameters
    ----------
    row_off, col_off : int
        Offset of the top-left pixel from the scene's top-left pixel.
    height, width : int
        Size in pixels (positive).

    Examples
    --------
    >>> w = Window(10, 20, 256, 128)
    >>> w.ymax, w.xmax
    (266, 148)
    >>> w.intersection(Window(0, 0, 100, 100))
    Window(row_off=10, col_off=20, height=90, width=80)
    """

    row_off: int
    col_off: int
    height: int
    width: int

    def __post_init__(self) -> None:
        for value in (self.row_off, self.col_off, self.height, self.width):
            if type(value) is not int and non_integers((value,)):
                raise WindowError(
                    f"{self!r} holds {value!r}, not an integer pixel index: refused, not "
                    "truncated. Round the offsets and sizes first (Raster Vision boxes of "
                    "floats: int(round(v)))."
                )
        if self.height <= 0 or self.width <= 0:
            raise WindowError(
                f"A window needs a positive size, but {self!r} is "
                f"{self.height} x {self.width}. Give height and width >= 1."
            )

    @classmethod
    def from_box(cls, ymin: int, xmin: int, ymax: int, xmax: int) -> Window:
        """Build a window from Raster Vision's ``(ymin, xmin, ymax, xmax)`` box of ints."""
        box = (ymin, xmin, ymax, xmax)
        if not all(type(v) is int for v in box):  # else numpy ints as Python's, or refused
            if not_ints := non_integers(box):
                raise WindowError(
                    f"Box {box} holds {not_ints}, which are not integer pixel indices: "
                    "refused, not truncated. Round them first."
                )
            ymin, xmin, ymax, xmax = (int(v) for v in box)
        return cls(ymin, xmin, ymax - ymin, xmax - xmin)

    @property
    def ymin(self) -> int:
        """First row."""
        return self.row_off

    @property
    def xmin(self) -> int:
        """First column."""
        return self.col_off

    @property
    def ymax(self) -> int:
        """One past the last row."""
        return self.row_off + self.height

    @property
    def xmax(self) -> int:
        """One past the last column."""
        return self.col_off + self.width

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(row slice, column slice)``, ready for ``array[..., rows, cols]``."""
        return (slice(self.ymin, self.ymax), slice(self.xmin, self.xmax))

    def isel(self) -> dict[str, slice]:
        """Selectors for ``DataArray.isel`` on ``y``/``x``."""
        rows, cols = self.slices
        return {"y": rows, "x": cols}

    def to_rasterio(self) -> rasterio.windows.Window:
        """The same box as a :class:`rasterio.windows.Window`."""
        return rasterio.windows.Window(self.col_off, self.row_off, self.width, self.height)

    def intersection(self, other: Window) -> Window | None:
        """The overlap of two windows, or ``None`` when they do not overlap."""
        ymin, xmin = max(self.ymin, other.ymin), max(self.xmin, other.xmin)
        ymax, xmax = min(self.ymax, other.ymax), min(self.xmax, other.xmax)
        if ymax <= ymin or xmax <= xmin:
            return None
        return Window.from_box(ymin, xmin, ymax, xmax)

    def contains(self, other: Window) -> bool:
        """Whether ``other`` lies wholly inside this window."""
        return (
            self.ymin <= other.ymin
            and self.xmin <= other.xmin
            and other.ymax <= self.ymax
            and other.xmax <= self.xmax
        )

    def shift(self, rows: int, cols: int) -> Window:
        """The same-sized window moved by ``rows`` and ``cols``."""
        return Window(self.row_off + rows, self.col_off + cols, self.height, self.width)

    def slices_in(self, outer: Window) -> tuple[slice, slice]:
        """Where this window lies in the ``(y, x)`` array of ``outer`` (a chip in its block...).

        Examples
        --------
        >>> Window(10, 20, 2, 3).slices_in(Window(8, 20, 16, 16))
        (slice(2, 4, None), slice(0, 3, None))
        """
        return self.shift(-outer.ymin, -outer.xmin).slices


@dataclass(frozen=True, slots=True)
class Grid:
    """A georeferenced pixel grid: CRS, affine transform and ``(height, width)``.

    Parameters
    ----------
    crs : rasterio.crs.CRS
        Coordinate reference system of the map coordinates.
    transform : affine.Affine
        Maps pixel ``(col, row)`` corners to map ``(x, y)``.
    shape : tuple of int
        ``(height, width)`` in pixels.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid(CRS.from_epsg(32616), Affine(0.5, 0, 733601, 0, -0.5, 3725139), (900, 900))
    >>> g.bounds
    (733601.0, 3724689.0, 734051.0, 3725139.0)
    >>> g.window_bounds(Window(0, 0, 2, 2))
    (733601.0, 3725138.0, 733602.0, 3725139.0)
    """

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @classmethod
    def from_dataarray(cls, data: xr.DataArray) -> Grid:
        """The grid of a rioxarray-georeferenced ``DataArray`` (dims ``..., y, x``)."""
        crs = data.rio.crs
        if crs is None:
            raise NoGeoreferenceError(
                f"DataArray {data.name!r} has no CRS. Set one with "
                "`data.rio.write_crs('EPSG:...')` before using it as a raster source."
            )
        if "x" not in data.dims or "y" not in data.dims:
            raise NoGeoreferenceError(
                f"DataArray {data.name!r} has dims {data.dims}; expected ('band', 'y', 'x'). "
                "Rename the spatial dims with `data.rename(...)`."
            )
        shape = (data.sizes["y"], data.sizes["x"])
        # From the coordinates where they tell it: a stored GeoTransform outlives a flip
        # (``isel(y=slice(None, None, -1))``); a single row or column needs the stored one.
        recalc = min(shape) >= 2
        transform = data.rio.transform(recalc=recalc)
        if transform.is_identity and not {"x", "y"} <= set(data.coords):
            raise NoGeoreferenceError(
                f"DataArray {data.name!r} has a CRS but neither x/y coordinates nor a "
                "transform, so where its pixels lie is unknown. Write one with "
                "`data.rio.write_transform(affine)`, or assign x and y coordinates."
            )
        return cls(CRS.from_user_input(crs), transform, shape)

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.shape[1]

    @property
    def extent(self) -> Window:
        """The window that covers the whole grid."""
        return Window(0, 0, self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in map units."""
        return self.window_bounds(self.extent)

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in map units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    def window_transform(self, window: Window) -> Affine:
        """The affine transform of a window's own pixel grid."""
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def window_bounds(self, window: Window) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of a window in map units."""
        xs, ys = _apply(
            self.transform,
            np.array([window.xmin, window.xmax, window.xmin, window.xmax]),
            np.array([window.ymin, window.ymin, window.ymax, window.ymax]),
        )
        return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))

    def window_polygon(self, window: Window) -> shapely.Polygon:
        """A window's footprint as a map-coordinate polygon."""
        xs, ys = _apply(
            self.transform,
            np.array([window.xmin, window.xmax, window.xmax, window.xmin]),
            np.array([window.ymin, window.ymin, window.ymax, window.ymax]),
        )
        return shapely.Polygon(np.column_stack([xs, ys]))

    def crop(self, window: Window) -> Grid:
        """The grid of a window of this grid."""
        return Grid(self.crs, self.window_transform(window), window.shape)

    def pixel_to_map(
        self, rows: np.ndarray, cols: np.ndarray, *, offset: str = "center"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map ``(x, y)`` of pixel centres (``offset='center'``) or corners (``'ul'``).

        Examples
        --------
        >>> from affine import Affine
        >>> g = Grid(CRS.from_epsg(3857), Affine(10, 0, 0, 0, -10, 100), (10, 10))
        >>> g.pixel_to_map(np.array([0]), np.array([1]))
        (array([15.]), array([95.]))
        """
        shift = 0.5 if offset == "center" else 0.0
        return _apply(self.transform, np.asarray(cols) + shift, np.asarray(rows) + shift)

    def map_to_pixel(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` (integers, floor) of the pixels holding map points ``(x, y)``."""
        cols, rows = _apply(~self.transform, xs, ys)
        return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)

    def bounds_to_window(self, bounds: tuple[float, float, float, float]) -> Window:
        """The smallest pixel window that covers map ``(left, bottom, right, top)``."""
        left, bottom, right, top = bounds
        cols, rows = _apply(
            ~self.transform,
            np.array([left, right, left, right]),
            np.array([top, top, bottom, bottom]),
        )
        ymin, ymax = math.floor(round(rows.min(), 6)), math.ceil(round(rows.max(), 6))
        xmin, xmax = math.floor(round(cols.min(), 6)), math.ceil(round(cols.max(), 6))
        return Window.from_box(ymin, xmin, max(ymax, ymin + 1), max(xmax, xmin + 1))

    def coords(self) -> dict[str, np.ndarray]:
        """Pixel-centre ``x``/``y`` coordinates, as rioxarray writes them."""
        t = self.transform
        return {
            "y": t.f + t.e * (np.arange(self.height) + 0.5),
            "x": t.c + t.a * (np.arange(self.width) + 0.5),
        }

    def wrap(
        self,
        values: Any,
        *,
        dims: tuple[str, ...] = ("band", "y", "x"),
        name: str | None = None,
        coords: Mapping[str, Any] | None = None,
    ) -> xr.DataArray:
        """``values`` (numpy or dask, ending in ``y, x``) as a DataArray on this grid.

        Pixel-centre ``x``/``y`` coordinates, CRS and transform are written through
        rioxarray, as ``rioxarray.open_rasterio`` does.

        Examples
        --------
        >>> from affine import Affine
        >>> g = Grid(CRS.from_epsg(3857), Affine(10, 0, 0, 0, -10, 20), (2, 3))
        >>> a = g.wrap(np.zeros((2, 3)), dims=("y", "x"))
        >>> a.rio.crs.to_epsg(), a.rio.transform() == g.transform, a.x.values.tolist()
        (3857, True, [5.0, 15.0, 25.0])
        """
        data = xr.DataArray(
            values, dims=dims, coords={**(coords or {}), **self.coords()}, name=name
        )
        data = data.rio.write_crs(self.crs).rio.write_transform(self.transform)
        assert isinstance(data, xr.DataArray)
        return data

    def window_of(self, other: Grid, *, tolerance: float = 1e-6) -> Window | None:
        """Where ``other`` lies on this grid's pixels, if it is a window of them.

        That is: the same CRS, pixel size and orientation (within ``tolerance`` px),
        and an offset of whole pixels. The window may reach outside this grid; ``None`` otherwise.

        Examples
        --------
        >>> from affine import Affine
        >>> g = Grid(CRS.from_epsg(3857), Affine(10, 0, 0, 0, -10, 100), (10, 10))
        >>> g.window_of(g.crop(Window(2, 3, 4, 5)))
        Window(row_off=2, col_off=3, height=4, width=5)
        >>> g.window_of(Grid(g.crs, Affine(10, 0, 5, 0, -10, 100), (4, 4))) is None
        True
        """
        if self.crs != other.crs:
            return None
        # ``other``'s pixels in this grid's pixels: a shift of whole pixels, nothing else.
        rel = ~self.transform * other.transform
        cols, rows = rel.c, rel.f
        if max(abs(rel.a - 1), abs(rel.e - 1), abs(rel.b), abs(rel.d)) > tolerance:
            return None
        if abs(cols - round(cols)) > tolerance or abs(rows - round(rows)) > tolerance:
            return None
        return Window(round(rows), round(cols), *other.shape)

    def aligned_with(self, other: Grid, *, tolerance: float = 1e-6) -> bool:
        """Whether ``other`` has the same CRS, transform (within ``tolerance`` px) and shape."""
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and self.transform.almost_equals(
                other.transform, precision=tolerance * self.resolution[0]
            )
        )
