"""Rasterizing and polygonizing in threads keeps the warning filters intact; forks get a new lock."""

import multiprocessing
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

import geoxr
import geoxr._rasterio_features as features
from geoxr import Window
from geoxr.label import aoi_window_mask, rasterize_window
from geoxr.store.vector import polygonize_block


def test_threads_rasterizing_and_polygonizing_leave_warnings_alone(
    sn4_image, sn4_buildings
) -> None:
    scene = geoxr.make_ss_scene(
        str(sn4_image),
        label_vector_uri=str(sn4_buildings),
        class_config=geoxr.ClassConfig(["background", "building"]),
        default_class_id=1,
        aoi_uri=str(sn4_buildings),  # partial windows: AOI masks are rasterized too
    )
    rng = np.random.default_rng(0)
    windows = [Window(int(r), int(c), 64, 64) for r, c in rng.integers(0, 836, (300, 2))]

    def label_and_polygons(window: Window) -> int:
        ids = scene.label_source.get_label_arr(window)
        aoi_window_mask(scene.aoi, scene.grid, window)
        return len(polygonize_block(ids, scene.grid, window, [1]))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        with ThreadPoolExecutor(4) as pool:
            polygons = list(pool.map(label_and_polygons, windows))
        assert warnings.filters == filters  # not a stray "ignore" from a racing thread
    assert not [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)]
    assert sum(polygons) > 0


def test_a_process_forked_while_the_lock_is_held_can_rasterize(sn4_image) -> None:
    grid = geoxr.RasterioSource(sn4_image).grid
    window = Window(0, 0, 8, 8)
    box = grid.window_polygon(Window(0, 0, 4, 8))
    context = multiprocessing.get_context("fork")
    with features._lock, context.Pool(1) as pool:  # forked while this thread holds it
        burnt = pool.apply_async(rasterize_window, ([box], [1], grid, window)).get(timeout=60)
    assert burnt[:4].all() and not burnt[4:].any()
