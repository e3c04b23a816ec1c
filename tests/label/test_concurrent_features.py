"""Rasterizing and polygonizing in several threads keeps the process's warning filters intact."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

import geoxr
from geoxr import Window
from geoxr.label import aoi_window_mask
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
