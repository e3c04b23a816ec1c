"""Window plans: sliding (edge-covering) and seeded random windows. No pixel is read."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
import xbatcher

from geoxr.errors import WindowError
from geoxr.grid._window import Window, non_integers

__all__ = ["ChipGrid", "PadDirection", "int_pair", "random_windows", "sliding_windows"]

PadDirection = Literal["start", "end", "both"]
_PAD_DIRECTIONS = ("start", "end", "both")


def int_pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``(rows, cols)`` of an int or pair argument; floats and bools are refused, not truncated.

    Examples
    --------
    >>> int_pair(4, "size"), int_pair([4, np.int64(8)], "size")
    ((4, 4), (4, 8))
    """
    pair: tuple[Any, ...]
    if isinstance(value, int | float | np.integer | np.floating):
        pair = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
    refused = non_integers(pair)
    if len(pair) != 2 or refused or any(v < 0 for v in pair):
        why = f" ({refused} not integers: refused, not truncated)" if refused else ""
        raise WindowError(
            f"{name} must be an int or a (rows, cols) pair of ints >= 0, got {value!r}{why}. "
            f"Give e.g. {name}=4 or {name}=(4, 8)."
        )
    return int(pair[0]), int(pair[1])


def _paddings(padding: object) -> tuple[int | None, int | None]:
    """Per-axis padding: ``None`` (automatic) for both axes or either, else ints.

    Examples
    --------
    >>> _paddings(None), _paddings(3), _paddings((None, 0))
    ((None, None), (3, 3), (None, 0))
    """
    if padding is None:
        return None, None
    if isinstance(padding, tuple | list) and len(padding) == 2 and None in padding:
        rows, cols = (None if p is None else int_pair(p, "padding")[0] for p in padding)
        return rows, cols
    return int_pair(padding, "padding")  # type: ignore[arg-type]


def _scene_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """A scene's ``(height, width)``: two ints of at least one pixel."""
    try:
        pair = tuple(shape)
    except TypeError:
        pair = ()
    if len(pair) != 2 or non_integers(pair) or min(pair) < 1:
        raise WindowError(
            f"shape must be the scene's (height, width) in whole pixels, each >= 1, got {shape!r}."
        )
    return int(pair[0]), int(pair[1])


def _axis_padding(
    length: int, size: int, stride: int, padding: int | None, direction: PadDirection
) -> tuple[int, int]:
    """Padding ``(before, after)`` of one axis; ``None`` pads just enough to cover it."""
    if padding is None:
        n = max(math.ceil((length - size) / stride), 0) + 1
        # Cap at size - 1: with stride > size, more would plan windows wholly off the scene.
        total = min(max((n - 1) * stride + size - length, 0), size - 1)
        before = {"start": total, "end": 0, "both": total // 2}[direction]
        return before, total - before
    return {"start": (padding, 0), "end": (0, padding), "both": (padding, padding)}[direction]


def _axis_starts(length: int, size: int, stride: int, before: int, after: int) -> list[int]:
    """Window starts along one axis, planned by xbatcher, plus the edge window it drops."""
    extended = length + before + after
    # xbatcher only needs the sizes: a zero-strided stand-in costs no memory.
    stand_in = xr.DataArray(np.broadcast_to(np.zeros((), np.uint8), (extended,)), dims=("i",))
    schema = xbatcher.BatchSchema(
        stand_in, input_dims={"i": size}, input_overlap={"i": size - stride}, preload_batch=False
    )
    starts = [sel["i"].start - before for sel in schema.selectors[0]]
    if not starts or starts[-1] + size < length:
        # xbatcher keeps only windows that end inside the array; cover the last strip too.
        starts.append(length + after - size)
    return starts


@dataclass(frozen=True, slots=True)
class ChipGrid:
    """A regular grid of equal windows, stored per axis: the chips of a whole scene.

    Chips are the product of ``row_starts`` and ``col_starts``; they are planned by
    :meth:`plan` (see :func:`sliding_windows`) and anchored to the scene, so a
    block of the scene can ask which chips touch it without listing them all.

    Examples
    --------
    >>> grid = ChipGrid.plan((600, 600), 256, 192)
    >>> grid.row_starts, len(grid)
    ((0, 192, 384), 9)
    >>> [w.row_off for w in grid.touching(Window(0, 0, 200, 100))]
    [0, 192]
    """

    size: tuple[int, int]
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @classmethod
    def plan(
        cls,
        shape: tuple[int, int],
        size: int | tuple[int, int],
        stride: int | tuple[int, int],
        *,
        padding: int | tuple[int | None, int | None] | None = None,
        pad_direction: PadDirection = "end",
    ) -> ChipGrid:
        """Plan the chips of a scene of ``shape``; arguments as for :func:`sliding_windows`.

        ``padding`` may also be a pair with ``None`` for an axis padded automatically.
        """
        if pad_direction not in _PAD_DIRECTIONS:
            raise WindowError(
                f"pad_direction must be one of {_PAD_DIRECTIONS}, got {pad_direction!r}."
            )
        shape = _scene_shape(shape)
        sizes, strides = int_pair(size, "size"), int_pair(stride, "stride")
        if min(sizes) < 1 or min(strides) < 1:
            raise WindowError(
                f"size and stride must be >= 1, got size={size!r}, stride={stride!r}."
            )
        pads = _paddings(padding)
        per_axis = []
        for axis, name in enumerate(("height", "width")):
            length, k, s = shape[axis], sizes[axis], strides[axis]
            pad = pads[axis]
            if pad is not None and pad >= k:
                raise WindowError(
                    f"padding {pad} px is not below the window {name} {k} px: windows "
                    "would lie wholly in the padding, with no scene pixel (all-masked chips). "
                    f"Give padding <= {k - 1} (padding < size, as in Raster Vision), or "
                    "padding=None to pad just enough to cover the scene."
                )
            before, after = _axis_padding(length, k, s, pad, pad_direction)
            if k > length + before + after:
                raise WindowError(
                    f"Window {name} {k} px is larger than the scene {name} {length} px plus "
                    f"padding {before + after} px. Use a smaller size, or padding >= "
                    f"{k - length} (or padding=None to pad automatically)."
                )
            per_axis.append(tuple(_axis_starts(length, k, s, before, after)))
        return cls(sizes, per_axis[0], per_axis[1])

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def windows(self) -> list[Window]:
        """All chips, in row-major order."""
        h, w = self.size
        return [Window(r, c, h, w) for r, c in itertools.product(self.row_starts, self.col_starts)]

    def touching(self, window: Window) -> list[Window]:
        """The chips that overlap ``window``, in row-major order."""
        h, w = self.size
        rows = _overlapping(self.row_starts, h, window.ymin, window.ymax)
        cols = _overlapping(self.col_starts, w, window.xmin, window.xmax)
        return [Window(r, c, h, w) for r, c in itertools.product(rows, cols)]


def _overlapping(starts: tuple[int, ...], size: int, lo: int, hi: int) -> tuple[int, ...]:
    """Starts of the chips of length ``size`` that overlap ``[lo, hi)``; starts are sorted."""
    first = bisect.bisect_right(starts, lo - size)
    last = bisect.bisect_left(starts, hi)
    return starts[first:last]


def sliding_windows(
    shape: tuple[int, int],
    size: int | tuple[int, int],
    stride: int | tuple[int, int],
    *,
    padding: int | tuple[int, int] | None = None,
    pad_direction: PadDirection = "end",
) -> list[Window]:
    r"""Plan a grid of windows that covers every pixel of a scene, in row-major order.

    Windows start at the scene's top-left corner (shifted by the padding for
    ``pad_direction='start'`` or ``'both'``) and step by ``stride``. Starts along
    each axis come from :class:`xbatcher.BatchSchema`; xbatcher drops the last
    partial strip, so geoxr adds one more window that ends on the padded edge.
    That gives :math:`\lceil (L - k) / s \rceil + 1` windows per axis for the
    default padding.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width)`` of the scene (or of its bbox).
    size, stride : int or (int, int)
        Window size and step in pixels, as one int or ``(rows, cols)``.
    padding : int or (int, int), optional
        How far windows may reach past the scene edges, below the window size
        (as in Raster Vision), so that every window holds a scene pixel. ``None``
        (default) pads just enough that the windows cover the whole scene.
    pad_direction : {'end', 'start', 'both'}
        Which edges the padding goes on.

    Returns
    -------
    list of Window

    Raises
    ------
    WindowError
        If a window is larger than the padded scene, ``padding`` is not below
        ``size``, or arguments are invalid.

    Examples
    --------
    >>> ws = sliding_windows((300, 500), 256, 256)
    >>> len(ws), ws[-1]
    (4, Window(row_off=256, col_off=256, height=256, width=256))
    >>> sliding_windows((300, 500), 256, 256, padding=0)[-1]
    Window(row_off=44, col_off=244, height=256, width=256)
    >>> sliding_windows((10, 10), 4, 4, pad_direction="start")[0]
    Window(row_off=-2, col_off=-2, height=4, width=4)
    """
    return ChipGrid.plan(
        shape, size, stride, padding=padding, pad_direction=pad_direction
    ).windows()


def random_windows(
    shape: tuple[int, int],
    *,
    size_lims: tuple[int, int] | None = None,
    h_lims: tuple[int, int] | None = None,
    w_lims: tuple[int, int] | None = None,
    max_windows: int,
    padding: int | tuple[int, int] | None = None,
    generator: np.random.Generator | int | None = None,
) -> list[Window]:
    """Plan ``max_windows`` random windows, reproducibly for a given seed.

    Sizes are drawn uniformly from ``[lo, hi)`` like Raster Vision's
    ``RandomWindowGeoDataset``: square windows from ``size_lims``, or independent
    heights and widths from ``h_lims`` and ``w_lims``.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width)`` of the scene.
    size_lims, h_lims, w_lims : (int, int), optional
        Size limits ``[lo, hi)``; give ``size_lims`` or both ``h_lims`` and ``w_lims``.
    max_windows : int
        Number of windows to plan.
    padding : int or (int, int), optional
        How far windows may reach past the edges; default half the largest size.
        A window smaller than that reaches at most its size - 1 px past an edge, so
        every window holds a scene pixel (Raster Vision's may lie wholly outside).
    generator : numpy.random.Generator or int, optional
        Random generator or seed.

    Returns
    -------
    list of Window

    Examples
    --------
    >>> ws = random_windows((100, 100), size_lims=(10, 20), max_windows=3, generator=0)
    >>> len(ws), all(10 <= w.height < 20 and w.height == w.width for w in ws)
    (3, True)
    >>> ws == random_windows((100, 100), size_lims=(10, 20), max_windows=3, generator=0)
    True
    """
    shape = _scene_shape(shape)
    if size_lims is not None:
        h_lims = w_lims = size_lims
    if h_lims is None or w_lims is None:
        raise WindowError("Give size_lims=(lo, hi), or both h_lims and w_lims.")
    for name, lims in (("h_lims", h_lims), ("w_lims", w_lims)):
        # Like every size here: ints, a float refused rather than truncated.
        pair = tuple(lims) if isinstance(lims, Sequence | np.ndarray) else ()
        if len(pair) != 2 or non_integers(pair) or not 1 <= pair[0] < pair[1]:
            raise WindowError(f"{name} must be (lo, hi) with ints 1 <= lo < hi, got {lims!r}.")
    if non_integers([max_windows]) or max_windows < 0:
        raise WindowError(f"max_windows must be an int >= 0, got {max_windows!r}.")
    pad = int_pair(padding, "padding") if padding is not None else (h_lims[1] // 2, w_lims[1] // 2)
    for axis, lims in enumerate((h_lims, w_lims)):
        if lims[1] - 1 > shape[axis] + 2 * pad[axis]:
            raise WindowError(
                f"Random windows up to {lims[1] - 1} px do not fit a scene of {shape[axis]} px "
                f"with padding {pad[axis]} px. Lower the size limits or raise the padding."
            )
    rng = np.random.default_rng(generator)
    heights = rng.integers(h_lims[0], h_lims[1], size=max_windows)
    widths = heights if size_lims is not None else rng.integers(w_lims[0], w_lims[1], max_windows)
    windows = []
    for h, w in zip(heights.tolist(), widths.tolist(), strict=True):
        # A window reaches at most size - 1 px past an edge: it keeps a scene pixel.
        ph, pw = min(pad[0], h - 1), min(pad[1], w - 1)
        row = int(rng.integers(-ph, shape[0] + ph - h + 1))
        col = int(rng.integers(-pw, shape[1] + pw - w + 1))
        windows.append(Window(row, col, h, w))
    return windows
