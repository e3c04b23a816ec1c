"""Hypothesis properties of the window plans and grid maths in geoxr.grid."""

import math

import numpy as np
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from geoxr.grid import (
    ChipGrid,
    Grid,
    TileLayout,
    Window,
    random_windows,
    sliding_windows,
    windows_share_tiles,
)
from geoxr.testing import coverage_count

lengths = st.integers(1, 300)
sizes = st.integers(1, 64)


@settings(max_examples=150, deadline=None)
@given(h=lengths, w=lengths, k=sizes, s=sizes, direction=st.sampled_from(["start", "end", "both"]))
def test_default_padding_covers_every_pixel_with_the_minimal_count(h, w, k, s, direction):
    windows = sliding_windows((h, w), k, s, pad_direction=direction)
    if s <= k:
        assert coverage_count((h, w), windows).min() >= 1
    rows = max(math.ceil((h - k) / s), 0) + 1
    cols = max(math.ceil((w - k) / s), 0) + 1
    assert len(windows) == rows * cols
    assert all(win.shape == (k, k) for win in windows)


@settings(max_examples=100, deadline=None)
@given(h=lengths, w=lengths, k=sizes, s=sizes)
def test_zero_padding_keeps_windows_inside_and_covers(h, w, k, s):
    if k > min(h, w):
        return
    windows = sliding_windows((h, w), k, min(s, k), padding=0)
    extent = Window(0, 0, h, w)
    assert all(extent.contains(win) for win in windows)
    cover = np.zeros((h, w), bool)
    for win in windows:
        cover[win.slices] = True
    assert cover.all()


@settings(max_examples=100, deadline=None)
@given(
    h=lengths,
    w=lengths,
    lo=st.integers(1, 30),
    span=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_windows_are_reproducible_and_inside_the_padded_extent(h, w, lo, span, seed):
    hi = lo + span
    pad = hi // 2
    if hi - 1 > min(h, w) + 2 * pad:
        return
    windows = random_windows((h, w), size_lims=(lo, hi), max_windows=20, generator=seed)
    assert windows == random_windows((h, w), size_lims=(lo, hi), max_windows=20, generator=seed)
    for win in windows:
        assert lo <= win.height < hi and win.height == win.width
        assert -pad <= win.row_off and win.ymax <= h + pad
        assert -pad <= win.col_off and win.xmax <= w + pad


@settings(max_examples=200, deadline=None)
@given(
    res=st.floats(0.01, 1000),
    x0=st.floats(-1e6, 1e6),
    y0=st.floats(-1e6, 1e6),
    row=st.integers(-50, 500),
    col=st.integers(-50, 500),
    hw=st.tuples(st.integers(1, 100), st.integers(1, 100)),
)
def test_window_bounds_round_trip(res, x0, y0, row, col, hw):
    grid = Grid(CRS.from_epsg(3857), Affine(res, 0, x0, 0, -res, y0), (400, 400))
    window = Window(row, col, *hw)
    assert grid.bounds_to_window(grid.window_bounds(window)) == window
    xs, ys = grid.pixel_to_map(np.array([row]), np.array([col]))
    rows, cols = grid.map_to_pixel(xs, ys)
    assert (rows[0], cols[0]) == (row, col)


@settings(max_examples=150, deadline=None)
@given(
    h=lengths,
    w=lengths,
    k=sizes,
    s=sizes,
    block=st.tuples(
        st.integers(-20, 300), st.integers(-20, 300), st.integers(1, 120), st.integers(1, 120)
    ),
)
def test_chip_grid_touching_equals_a_brute_force_search(h, w, k, s, block):
    grid = ChipGrid.plan((h, w), k, s)
    window = Window(*block)
    expected = [c for c in grid.windows() if c.intersection(window) is not None]
    assert grid.touching(window) == expected


def _tiles_read(window, layout, extent):
    """The tiles one window reads, one by one (the reference)."""
    inner = window.intersection(extent)
    if inner is None:
        return []
    (th, tw), (oy, ox) = layout
    return [
        (ty, tx)
        for ty in range((inner.ymin + oy) // th, (inner.ymax - 1 + oy) // th + 1)
        for tx in range((inner.xmin + ox) // tw, (inner.xmax - 1 + ox) // tw + 1)
    ]


windows_on_a_scene = st.lists(
    st.builds(
        Window,
        st.integers(-40, 200),
        st.integers(-40, 200),
        st.integers(1, 90),
        st.integers(1, 90),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    windows=windows_on_a_scene,
    tile=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    offset=st.tuples(st.integers(0, 64), st.integers(0, 64)),
)
def test_windows_share_tiles_as_counted_one_by_one(windows, tile, offset):
    layout = TileLayout(tile, offset)
    extent = Window(0, 0, 150, 170)
    read = [t for w in windows for t in _tiles_read(w, layout, extent)]
    assert windows_share_tiles(windows, layout, extent) == (len(set(read)) < len(read))
