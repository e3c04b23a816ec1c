"""Tests of geoxr.grid: windows, window plans, AOI filtering and pixel <-> map maths."""

import math
import pickle

import numpy as np
import pytest
import rasterio
import rasterio.transform
import rasterio.windows
import shapely
from affine import Affine
from rasterio.crs import CRS

import geoxr
from geoxr import Grid, Window, filter_windows, random_windows, sliding_windows
from geoxr.grid import aoi_union
from geoxr.testing import coverage_count as coverage


def axis_starts(windows, axis):
    return sorted({w.row_off if axis == 0 else w.col_off for w in windows})


# ---------------------------------------------------------------------------- Window


def test_window_box_views():
    w = Window(10, 20, 30, 40)
    assert (w.ymin, w.xmin, w.ymax, w.xmax) == (10, 20, 40, 60)
    assert w.shape == (30, 40)
    assert w.slices == (slice(10, 40), slice(20, 60))
    assert w.isel() == {"y": slice(10, 40), "x": slice(20, 60)}
    assert Window.from_box(10, 20, 40, 60) == w
    assert w.to_rasterio() == rasterio.windows.Window(20, 10, 40, 30)
    assert w.shift(-10, 5) == Window(0, 25, 30, 40)


def test_window_intersection_and_contains():
    a, b = Window(0, 0, 10, 10), Window(5, -3, 10, 6)
    assert a.intersection(b) == Window(5, 0, 5, 3)
    assert b.intersection(a) == Window(5, 0, 5, 3)
    assert a.intersection(Window(10, 0, 5, 5)) is None  # edge-adjacent: no pixel shared
    assert a.contains(Window(2, 3, 8, 7))
    assert not a.contains(Window(2, 3, 9, 7))
    assert not a.contains(b)


@pytest.mark.parametrize("size", [(0, 5), (5, 0), (-1, 3)])
def test_window_needs_positive_size(size):
    with pytest.raises(geoxr.WindowError, match="positive size"):
        Window(0, 0, *size)


def test_window_is_frozen_and_hashable():
    w = Window(1, 2, 3, 4)
    with pytest.raises(AttributeError):
        w.row_off = 5  # type: ignore[misc]
    assert {w, Window(1, 2, 3, 4)} == {w}
    assert pickle.loads(pickle.dumps(w)) == w


# ---------------------------------------------------------------------------- sliding


@pytest.mark.parametrize("pad_direction", ["start", "end", "both"])
@pytest.mark.parametrize(
    ("shape", "size", "stride"),
    [
        ((443, 489), 64, 64),
        ((443, 489), 100, 37),
        ((300, 500), 256, 256),
        ((10, 10), 4, 3),
        ((7, 13), (3, 5), (2, 5)),
        ((5, 9), 8, 8),  # window larger than the scene: padded
        ((1, 1), 1, 1),
    ],
)
def test_sliding_windows_cover_every_pixel(shape, size, stride, pad_direction):
    windows = sliding_windows(shape, size, stride, pad_direction=pad_direction)
    counts = coverage(shape, windows)
    assert counts.min() >= 1, f"{int((counts == 0).sum())} pixels not covered"
    k = (size, size) if isinstance(size, int) else size
    assert all(w.shape == k for w in windows)
    # Row-major order, no duplicates.
    keys = [(w.row_off, w.col_off) for w in windows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


AXIS_CASES = [(443, 64, 64), (489, 64, 64), (300, 256, 256), (500, 256, 100), (10, 4, 3),
              (9, 9, 1), (100, 7, 7), (5, 8, 8), (20, 4, 6)]  # fmt: skip


@pytest.mark.parametrize(
    ("length", "size", "stride", "padding"),
    [
        (*case, padding)
        for case in AXIS_CASES
        for padding in (None, 0)
        if padding is None or case[1] <= case[0]
    ],
)
def test_sliding_window_count_per_axis(length, size, stride, padding):
    windows = sliding_windows((length, 3 * length), (size, 1), (stride, 1), padding=padding)
    expected = max(math.ceil((length - size) / stride), 0) + 1
    assert len(axis_starts(windows, 0)) == expected
    assert len(axis_starts(windows, 1)) == 3 * length
    assert len(windows) == expected * 3 * length


@pytest.mark.parametrize(
    ("pad_direction", "expected"),
    [("end", [0, 256]), ("start", [-212, 44]), ("both", [-106, 150])],
)
def test_sliding_windows_pad_direction(pad_direction, expected):
    # 300 rows, 256 windows: 212 rows of padding in all, placed by pad_direction.
    windows = sliding_windows((300, 300), 256, 256, pad_direction=pad_direction)
    assert axis_starts(windows, 0) == expected
    assert axis_starts(windows, 1) == expected


def test_sliding_windows_default_padding_stays_within_one_window():
    for direction in ("start", "end", "both"):
        for w in sliding_windows((443, 489), 100, 70, pad_direction=direction):
            assert -100 < w.ymin and w.ymax < 443 + 100
            assert -100 < w.xmin and w.xmax < 489 + 100


def test_sliding_windows_padding_zero_snaps_last_window_to_edge():
    windows = sliding_windows((300, 500), 256, 256, padding=0)
    assert axis_starts(windows, 0) == [0, 44]
    assert axis_starts(windows, 1) == [0, 244]
    assert windows[-1] == Window(44, 244, 256, 256)
    assert all(Window(0, 0, 300, 500).contains(w) for w in windows)
    assert coverage((300, 500), windows).min() == 1

    windows = sliding_windows((443, 489), 64, 50, padding=0)
    rows, cols = axis_starts(windows, 0), axis_starts(windows, 1)
    assert rows[:-1] == list(range(0, 379, 50)) and rows[-1] == 443 - 64
    assert cols[:-1] == list(range(0, 425, 50)) and cols[-1] == 489 - 64


@pytest.mark.parametrize(
    ("padding", "pad_direction", "expected"),
    [
        (2, "end", [0, 4, 8]),
        (2, "start", [-2, 2, 6]),
        (2, "both", [-2, 2, 6]),
        (3, "end", [0, 4, 8]),
        (3, "both", [-3, 1, 5, 9]),
    ],
)
def test_sliding_windows_explicit_padding(padding, pad_direction, expected):
    windows = sliding_windows((10, 10), 4, 4, padding=padding, pad_direction=pad_direction)
    assert axis_starts(windows, 0) == expected
    before = padding if pad_direction in ("start", "both") else 0
    after = padding if pad_direction in ("end", "both") else 0
    assert all(-before <= w.ymin and w.ymax <= 10 + after for w in windows)
    assert coverage((10, 10), windows).min() >= 1


def test_sliding_windows_explicit_padding_per_axis():
    windows = sliding_windows((10, 20), (4, 8), (4, 8), padding=(2, 0))
    assert axis_starts(windows, 0) == [0, 4, 8]
    assert axis_starts(windows, 1) == [0, 8, 12]


@pytest.mark.parametrize("pad_direction", ["start", "end", "both"])
@pytest.mark.parametrize(
    ("length", "size", "stride"), [(10, 4, 4), (10, 4, 3), (20, 4, 6), (3, 5, 2)]
)
def test_sliding_windows_with_padding_below_size_all_hold_a_scene_pixel(
    length, size, stride, pad_direction
):
    scene = Window(0, 0, length, length)
    for padding in range(max(size - length, 0), size):
        windows = sliding_windows(
            (length, length), size, stride, padding=padding, pad_direction=pad_direction
        )
        assert all(w.intersection(scene) is not None for w in windows), padding


@pytest.mark.parametrize("pad_direction", ["start", "end", "both"])
@pytest.mark.parametrize(
    ("size", "padding", "match"),
    [
        (4, 4, r"padding 4 px is not below the window height 4 px.*padding <= 3"),
        (4, 6, r"padding 6 px is not below the window height 4 px.*padding <= 3"),
        ((4, 8), (2, 8), r"padding 8 px is not below the window width 8 px.*padding <= 7"),
    ],
)
def test_sliding_windows_padding_not_below_size_raises(size, padding, pad_direction, match):
    # With padding >= size, windows were planned wholly in the padding (all masked):
    # 10 px, 4 px windows, padding 6 at the end gave a window over rows [12, 16).
    with pytest.raises(geoxr.WindowError, match=rf"(?s){match}.*padding=None"):
        sliding_windows((10, 20), size, size, padding=padding, pad_direction=pad_direction)
    from geoxr.grid import ChipGrid

    with pytest.raises(geoxr.WindowError, match=match):
        ChipGrid.plan((10, 20), size, size, padding=padding, pad_direction=pad_direction)


@pytest.mark.parametrize(
    ("padding", "pad_direction", "expected"),
    [
        # 20 px, 4 px windows every 6 px: starts step by the stride from the padded start,
        # and the last window reaches the last pixel.
        (None, "end", [0, 6, 12, 18]),
        (None, "start", [-2, 4, 10, 16]),
        (None, "both", [-1, 5, 11, 17]),
        (0, "end", [0, 6, 12, 16]),
    ],
)
def test_sliding_windows_stride_larger_than_size_starts(padding, pad_direction, expected):
    windows = sliding_windows((20, 20), 4, 6, padding=padding, pad_direction=pad_direction)
    assert axis_starts(windows, 0) == expected
    assert axis_starts(windows, 1) == expected
    # Gaps are expected when stride > size: pixels 4 and 5 are not covered.
    assert coverage((20, 20), windows).min() == 0


@pytest.mark.parametrize("pad_direction", ["start", "end", "both"])
@pytest.mark.parametrize(("length", "size", "stride"), [(20, 4, 6), (20, 4, 7), (100, 5, 13)])
def test_sliding_windows_stride_larger_than_size_windows_touch_scene(
    length, size, stride, pad_direction
):
    # With gaps allowed, default padding must still not plan windows wholly off the
    # scene (they would be all nodata): every window shares pixels with the scene, the
    # count follows ceil((L - k) / s) + 1 and the first and last pixels are covered.
    windows = sliding_windows((length, length), size, stride, pad_direction=pad_direction)
    scene = Window(0, 0, length, length)
    off_scene = [w for w in windows if w.intersection(scene) is None]
    assert not off_scene, f"{len(off_scene)} windows lie wholly outside the scene"
    assert len(axis_starts(windows, 0)) == math.ceil((length - size) / stride) + 1
    counts = coverage((length, length), windows)
    assert counts[0, 0] >= 1 and counts[-1, -1] >= 1


@pytest.mark.parametrize("shape", [(100, 200), (200, 100)])
def test_window_larger_than_scene_without_padding_raises(shape):
    with pytest.raises(geoxr.WindowError, match=r"larger than the scene .* plus padding 0 px"):
        sliding_windows(shape, 128, 128, padding=0)
    with pytest.raises(geoxr.WindowError, match="padding >= 28"):
        sliding_windows(shape, 128, 128, padding=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0, "stride": 1}, "size and stride must be >= 1"),
        ({"size": 4, "stride": 0}, "size and stride must be >= 1"),
        ({"size": (4, 4, 4), "stride": 1}, "size must be an int or a"),
        ({"size": 4, "stride": 2.5}, "stride must be an int or a"),
        # Whole floats and bools used to pass as ints: refused, as in channel_order.
        ({"size": 4.0, "stride": 2}, r"size must be an int .* got 4\.0.*size=4"),
        ({"size": (4, 4.0), "stride": 2}, r"size must be an int .* got \(4, 4\.0\)"),
        ({"size": 4, "stride": True}, r"stride must be an int .* got True.*not integers"),
        (
            {"size": 4, "stride": 4, "padding": (0, 2.0)},
            r"padding must be an int .*\[2\.0\] not integers",
        ),
        ({"size": 4, "stride": 4, "padding": -1}, "padding must be an int or a"),
        ({"size": 4, "stride": 4, "pad_direction": "middle"}, "pad_direction must be one of"),
    ],
)
def test_sliding_windows_invalid_arguments(kwargs, match):
    with pytest.raises(geoxr.WindowError, match=match):
        sliding_windows((10, 10), **kwargs)


def test_sliding_windows_take_numpy_integers():
    planned = sliding_windows((10, 10), np.int64(4), (np.int32(2), 3), padding=np.uint8(1))
    assert planned == sliding_windows((10, 10), 4, (2, 3), padding=1)
    assert all(type(v) is int for w in planned for v in (w.row_off, w.height))


@pytest.mark.parametrize(
    ("shape", "size", "stride", "padding"),
    [((443, 489), 64, 48, None), ((300, 500), 256, 256, 0), ((10, 13), (4, 5), (3, 2), 2)],
)
def test_chip_grid_matches_sliding_windows_and_finds_touching_chips(shape, size, stride, padding):
    from geoxr.grid import ChipGrid

    chips = ChipGrid.plan(shape, size, stride, padding=padding)
    windows = sliding_windows(shape, size, stride, padding=padding)
    assert chips.windows() == windows and len(chips) == len(windows)
    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        row, col = int(rng.integers(-5, shape[0])), int(rng.integers(-5, shape[1]))
        block = Window(row, col, h, w)
        expected = [c for c in windows if c.intersection(block) is not None]
        assert chips.touching(block) == expected, block


# ---------------------------------------------------------------------------- random


def test_random_windows_seeded_reproducible():
    kw = {"size_lims": (10, 50), "max_windows": 40}
    a = random_windows((443, 489), generator=7, **kw)
    assert a == random_windows((443, 489), generator=7, **kw)
    assert a == random_windows((443, 489), generator=np.random.default_rng(7), **kw)
    assert a != random_windows((443, 489), generator=8, **kw)
    assert len(a) == 40
    assert all(10 <= w.height < 50 and w.height == w.width for w in a)


@pytest.mark.parametrize("padding", [None, 0, 5, (0, 30)])
def test_random_windows_inside_padded_extent(padding):
    shape = (120, 90)
    windows = random_windows(
        shape, h_lims=(8, 40), w_lims=(20, 60), max_windows=300, padding=padding, generator=3
    )
    pad = (40 // 2, 60 // 2) if padding is None else (padding, padding)
    if isinstance(padding, tuple):
        pad = padding
    assert all(8 <= w.height < 40 and 20 <= w.width < 60 for w in windows)
    assert all(-pad[0] <= w.ymin and w.ymax <= shape[0] + pad[0] for w in windows)
    assert all(-pad[1] <= w.xmin and w.xmax <= shape[1] + pad[1] for w in windows)
    # The draws do use the whole padded range, not just the scene.
    assert min(w.ymin for w in windows) < -pad[0] + 10
    assert max(w.ymax for w in windows) > shape[0] + pad[0] - 10
    assert len({w.shape for w in windows}) > 10  # heights and widths drawn independently


def test_random_windows_smaller_than_the_padding_keep_a_scene_pixel():
    # The default padding is half the largest size (150 px): a 10 px window could lie
    # wholly past an edge, an all-masked chip.
    shape = (120, 90)
    windows = random_windows(shape, size_lims=(10, 300), max_windows=2000, generator=1)
    extent = Window(0, 0, *shape)
    assert all(extent.intersection(w) is not None for w in windows)
    small = [w for w in windows if w.height < 40]
    assert len(small) > 100
    # ... and still reach past every edge, by up to their size - 1
    assert all(w.ymin > -w.height and w.xmin > -w.width for w in small)
    assert any(w.ymin < 0 for w in small) and any(w.ymax > shape[0] for w in small)
    assert any(w.xmin < 0 for w in small) and any(w.xmax > shape[1] for w in small)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_windows": 3}, "Give size_lims"),
        ({"size_lims": (5, 5), "max_windows": 3}, "1 <= lo < hi"),
        ({"size_lims": (0, 5), "max_windows": 3}, "1 <= lo < hi"),
        ({"size_lims": (5, 10), "max_windows": -1}, "max_windows must be an int >= 0"),
        ({"size_lims": (5, 100), "padding": 0, "max_windows": 1}, "do not fit a scene of 50 px"),
        ({"size_lims": (5, 10), "padding": 2.0, "max_windows": 1}, "padding must be an int"),
    ],
)
def test_random_windows_invalid_arguments(kwargs, match):
    with pytest.raises(geoxr.WindowError, match=match):
        random_windows((50, 50), **kwargs)


# ---------------------------------------------------------------------------- AOI filter


@pytest.fixture(scope="module")
def unit_grid():
    # 1 m pixels, origin at (0, 100): pixel (row, col) spans x in [col, col+1], y in
    # [100-row-1, 100-row].
    return Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 100), (100, 100))


def test_filter_windows_within_and_intersects(unit_grid):
    windows = sliding_windows(unit_grid.shape, 10, 10)
    assert len(windows) == 100
    # AOI over rows [15, 47) and cols [20, 61) in pixel terms.
    aoi = shapely.box(20, 100 - 47, 61, 100 - 15)
    within = filter_windows(windows, unit_grid, aoi, mode="within")
    inter = filter_windows(windows, unit_grid, aoi, mode="intersects")
    # within: rows 20, 30 (40+10 > 47); cols 20..50
    assert within == [Window(r, c, 10, 10) for r in (20, 30) for c in (20, 30, 40, 50)]
    # intersects: rows 10..40, cols 20..60
    assert inter == [Window(r, c, 10, 10) for r in (10, 20, 30, 40) for c in (20, 30, 40, 50, 60)]
    assert filter_windows(windows, unit_grid, aoi) == within  # default mode


def test_filter_windows_touching_edge_is_not_intersecting(unit_grid):
    windows = [Window(0, 0, 10, 10), Window(0, 10, 10, 10), Window(0, 20, 10, 10)]
    aoi = shapely.box(10, 90, 20, 100)  # exactly the second window
    assert filter_windows(windows, unit_grid, aoi, mode="intersects") == [windows[1]]
    assert filter_windows(windows, unit_grid, aoi, mode="within") == [windows[1]]
    assert filter_windows([], unit_grid, aoi) == []


def test_filter_windows_bad_mode(unit_grid):
    with pytest.raises(geoxr.AOIError, match="'within' or 'intersects'"):
        filter_windows([Window(0, 0, 1, 1)], unit_grid, shapely.box(0, 0, 1, 1), mode="covers")


@pytest.mark.parametrize(
    ("aoi", "aoi_bounds"),
    [
        # In the grid's CRS, 5 km away.
        (shapely.box(5000, 5000, 5100, 5100), r"\(5000\.0, 5000\.0, 5100\.0, 5100\.0\)"),
        # The numbers of a lon/lat AOI, taken as metres of the grid's CRS.
        (shapely.box(-84.4, 33.6, -84.3, 33.7), r"\(-84\.4, 33\.6, -84\.3, 33\.7\)"),
        # Sharing only the grid's right edge: no pixel inside.
        (shapely.box(100, 0, 150, 100), r"\(100\.0, 0\.0, 150\.0, 100\.0\)"),
    ],
)
@pytest.mark.parametrize("mode", ["within", "intersects"])
def test_filter_windows_aoi_outside_the_grid_raises(unit_grid, aoi, aoi_bounds, mode):
    windows = sliding_windows(unit_grid.shape, 10, 10)
    match = (
        rf"(?s)AOI \(bounds {aoi_bounds}\) does not overlap the raster "
        r"\(bounds \(0\.0, 0\.0, 100\.0, 100\.0\), both in EPSG:32616\).*CRS.*wrong file"
    )
    with pytest.raises(geoxr.AOIError, match=match):
        filter_windows(windows, unit_grid, aoi, mode=mode)
    with pytest.raises(geoxr.AOIError, match=match):
        filter_windows([], unit_grid, aoi, mode=mode)  # known before any window


def test_filter_windows_aoi_in_the_bounds_but_off_a_rotated_grid_raises():
    # A grid turned 45 degrees: its footprint is a diamond, its bounds the square around it.
    grid = Grid(CRS.from_epsg(32616), Affine.rotation(45) * Affine.scale(1, -1), (10, 10))
    left, _, _, top = grid.bounds
    corner = shapely.box(left, top - 1, left + 1, top)  # inside the bounds, off the diamond
    assert shapely.box(*grid.bounds).covers(corner)
    with pytest.raises(geoxr.AOIError, match="does not overlap the raster"):
        filter_windows(sliding_windows(grid.shape, 2, 2), grid, corner)


def test_aoi_union_rejects_points_and_empty():
    from geoxr.grid import aoi_union

    assert aoi_union([shapely.box(0, 0, 1, 1), shapely.box(0.5, 0, 2, 1)]).area == 2.0
    with pytest.raises(geoxr.AOIError, match=r"Polygons or MultiPolygons, but it has \['Point'\]"):
        aoi_union([shapely.Point(0, 0)])
    with pytest.raises(geoxr.AOIError, match="is empty"):
        aoi_union([])
    with pytest.raises(geoxr.AOIError, match="zero area"):
        aoi_union([shapely.Polygon([(0, 0), (1, 1), (2, 2)])])


def test_aoi_union_keeps_the_polygons_of_a_repaired_polygon():
    from geoxr.grid import aoi_union

    spike = shapely.Polygon([(0, 0), (8, 0), (8, 8), (4, 8), (4, 15), (4, 8), (0, 8)])
    repaired = shapely.make_valid(spike)  # as VectorSource repairs it: a polygon and a line
    assert not spike.is_valid and repaired.geom_type == "GeometryCollection"
    assert aoi_union([repaired]).equals(shapely.box(0, 0, 8, 8))


# ---------------------------------------------------------------------------- Grid


@pytest.fixture(scope="module")
def nc_grid(nc_stack):
    with rasterio.open(nc_stack) as ds:
        return Grid(ds.crs, ds.transform, (ds.height, ds.width))


def test_grid_from_file(nc_grid, nc_stack):
    with rasterio.open(nc_stack) as ds:
        assert nc_grid.bounds == tuple(ds.bounds)
        assert nc_grid.resolution == ds.res
    assert nc_grid.shape == (443, 489) and (nc_grid.height, nc_grid.width) == (443, 489)
    assert nc_grid.extent == Window(0, 0, 443, 489)
    assert nc_grid.bounds == (630534.0, 215488.5, 644470.5, 228114.0)


def test_grid_pixel_map_round_trip(nc_grid):
    rng = np.random.default_rng(0)
    rows = rng.integers(-50, 500, 1000)
    cols = rng.integers(-50, 550, 1000)
    xs, ys = nc_grid.pixel_to_map(rows, cols)
    # Pixel centres, as rasterio computes them.
    rx, ry = rasterio.transform.xy(nc_grid.transform, rows, cols, offset="center")
    np.testing.assert_allclose(xs, rx, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ys, ry, rtol=0, atol=1e-6)
    back_rows, back_cols = nc_grid.map_to_pixel(xs, ys)
    np.testing.assert_array_equal(back_rows, rows)
    np.testing.assert_array_equal(back_cols, cols)
    # Corners map to the pixel they open.
    ul_x, ul_y = nc_grid.pixel_to_map(rows, cols, offset="ul")
    np.testing.assert_allclose(ul_x, 630534.0 + 28.5 * cols)
    np.testing.assert_allclose(ul_y, 228114.0 - 28.5 * rows)
    r2, c2 = nc_grid.map_to_pixel(ul_x + 0.01, ul_y - 0.01)
    np.testing.assert_array_equal(r2, rows)
    np.testing.assert_array_equal(c2, cols)


def test_grid_map_to_pixel_matches_rasterio_rowcol(nc_grid):
    rng = np.random.default_rng(1)
    xs = rng.uniform(630534.0, 644470.5, 500)
    ys = rng.uniform(215488.5, 228114.0, 500)
    rows, cols = nc_grid.map_to_pixel(xs, ys)
    r_rows, r_cols = rasterio.transform.rowcol(nc_grid.transform, xs, ys)
    np.testing.assert_array_equal(rows, r_rows)
    np.testing.assert_array_equal(cols, r_cols)


@pytest.mark.parametrize(
    "window",
    [
        Window(0, 0, 443, 489),
        Window(10, 20, 64, 32),
        Window(-5, 480, 20, 30),
        Window(442, 0, 1, 1),
    ],
)
def test_grid_window_transform_and_bounds_match_rasterio(nc_grid, window):
    rio_window = window.to_rasterio()
    expected = rasterio.windows.transform(rio_window, nc_grid.transform)
    assert nc_grid.window_transform(window).almost_equals(expected, precision=1e-9)
    rio_bounds = rasterio.windows.bounds(rio_window, nc_grid.transform)
    np.testing.assert_allclose(nc_grid.window_bounds(window), rio_bounds, rtol=0, atol=1e-6)
    assert nc_grid.window_polygon(window).equals(shapely.box(*rio_bounds))
    cropped = nc_grid.crop(window)
    assert cropped.shape == window.shape and cropped.crs == nc_grid.crs
    assert cropped.transform.almost_equals(expected, precision=1e-9)


@pytest.mark.parametrize(
    "window", [Window(0, 0, 443, 489), Window(10, 20, 64, 32), Window(-5, 480, 20, 30)]
)
def test_grid_bounds_to_window_round_trip(nc_grid, window):
    assert nc_grid.bounds_to_window(nc_grid.window_bounds(window)) == window
    rio = rasterio.windows.from_bounds(*nc_grid.window_bounds(window), nc_grid.transform)
    assert (round(rio.row_off), round(rio.col_off)) == (window.row_off, window.col_off)


def test_grid_bounds_to_window_covers_partial_pixels(nc_grid):
    # Bounds that start and end inside pixels: the smallest covering window.
    left, top = 630534.0 + 28.5 * 10 + 3.0, 228114.0 - 28.5 * 5 - 1.0
    right, bottom = 630534.0 + 28.5 * 20 - 3.0, 228114.0 - 28.5 * 9 + 1.0
    assert nc_grid.bounds_to_window((left, bottom, right, top)) == Window.from_box(5, 10, 9, 20)
    # A point-like box still gives one pixel.
    x, y = 630534.0 + 28.5 * 3.5, 228114.0 - 28.5 * 7.5
    assert nc_grid.bounds_to_window((x, y, x, y)) == Window(7, 3, 1, 1)


def test_grid_coords_match_rioxarray(nc_stack, nc_grid):
    import rioxarray

    da = rioxarray.open_rasterio(nc_stack)
    coords = nc_grid.coords()
    np.testing.assert_allclose(coords["x"], da.x.values)
    np.testing.assert_allclose(coords["y"], da.y.values)
    assert Grid.from_dataarray(da).aligned_with(nc_grid)


def test_grid_from_dataarray_errors():
    da = geoxr.testing.make_raster((1, 4, 4))
    assert Grid.from_dataarray(da).shape == (4, 4)
    with pytest.raises(geoxr.NoGeoreferenceError, match="has no CRS"):
        Grid.from_dataarray(da.drop_vars("spatial_ref"))
    with pytest.raises(geoxr.NoGeoreferenceError, match="expected"):
        Grid.from_dataarray(da.rename(x="lon"))


def test_grid_aligned_with(nc_grid):
    assert nc_grid.aligned_with(nc_grid)
    shifted = Grid(nc_grid.crs, nc_grid.transform @ Affine.translation(0.5, 0), nc_grid.shape)
    assert not nc_grid.aligned_with(shifted)
    assert not nc_grid.aligned_with(nc_grid.crop(Window(0, 0, 10, 10)))
    other_crs = Grid(CRS.from_epsg(32616), nc_grid.transform, nc_grid.shape)
    assert not nc_grid.aligned_with(other_crs)


def test_an_aoi_repaired_into_a_polygon_and_a_line_keeps_the_polygon():
    # make_valid left the spike of a spiked polygon as a LineString: the "union" was a
    # GeometryCollection and filter_windows(mode="intersects") kept windows the spike
    # crossed without any AOI area.
    grid = Grid(CRS.from_epsg(3857), Affine(1, 0, 0, 0, -1, 100), (100, 100))
    spiked = shapely.Polygon([(0, 0), (50, 0), (50, 50), (75, 90), (50, 50), (0, 50)])
    aoi = aoi_union([spiked], grid=grid)
    assert aoi.geom_type == "Polygon" and aoi.area == 2500
    kept = filter_windows(sliding_windows((100, 100), 20, 20), grid, aoi, mode="intersects")
    assert all(shapely.intersection(aoi, grid.window_polygon(w)).area > 0 for w in kept)
    assert len(kept) == 9


@pytest.mark.parametrize("shape", [10, (10.5, 10), (0, 10), (10, 10, 3)])
def test_a_scene_shape_that_is_no_pair_of_positive_ints_is_refused(shape):
    # 10 and (10.5, 10) raised raw TypeErrors; (0, 10) gave random windows without a pixel.
    with pytest.raises(geoxr.WindowError, match=r"shape must be the scene's \(height, width\)"):
        sliding_windows(shape, 4, 4)
    with pytest.raises(geoxr.WindowError, match=r"shape must be the scene's \(height, width\)"):
        random_windows(shape, size_lims=(2, 4), max_windows=2)


@pytest.mark.parametrize(
    "kwargs", [{"size_lims": (4.0, 8)}, {"size_lims": (4, 8, 9)}, {"max_windows": 2.0}]
)
def test_random_window_limits_that_are_no_ints_are_refused(kwargs):
    # 4.0 was truncated; a third limit and a float max_windows raised raw errors.
    with pytest.raises(geoxr.WindowError, match=r"must be"):
        random_windows((20, 20), **{"size_lims": (4, 8), "max_windows": 2, **kwargs})


def test_window_of_finds_crops_and_refuses_other_pixels():
    crs = CRS.from_epsg(32616)
    grid = Grid(crs, Affine(10, 0, 500, 0, -10, 900), (40, 50))
    assert grid.window_of(grid.crop(Window(-3, 7, 8, 9))) == Window(-3, 7, 8, 9)
    for other in (
        Affine(10, 0, 505, 0, -10, 900),  # half a pixel off
        Affine(20, 0, 500, 0, -20, 900),  # other pixel size
        Affine(10, 0, 500, 0, 10, 900),  # flipped
    ):
        assert grid.window_of(Grid(crs, other, (4, 4))) is None, other
    # A rotated grid's pixels are not an unrotated grid's, either way round.
    rotated = Grid(crs, Affine(10, 2, 0, 2, -10, 100), (10, 10))
    plain = Grid(crs, Affine(10, 0, 20, 0, -10, 100), (4, 4))
    assert rotated.window_of(plain) is None and plain.window_of(rotated) is None
    assert rotated.window_of(rotated.crop(Window(1, 2, 3, 4))) == Window(1, 2, 3, 4)
