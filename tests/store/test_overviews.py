"""COG overviews computed block by block: equal to the means and samples they stand for."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

import geoxr
from geoxr.label import SemanticSegmentationLabels
from geoxr.store import write_cog_labels
from geoxr.store._overviews import write_remaining_levels


def _reference_halve(values: np.ndarray, *, average: bool) -> np.ndarray:
    """2 x 2 NaN-mean (odd edges padded with NaN) or top-left sample, the plain way."""
    if not average:
        return values[..., ::2, ::2]
    height, width = values.shape[-2:]
    padded = np.full((*values.shape[:-2], height + height % 2, width + width % 2), np.nan)
    padded[..., :height, :width] = values
    groups = padded.reshape(*padded.shape[:-2], padded.shape[-2] // 2, 2, -1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": all NaN
        return np.nanmean(groups, axis=(-3, -1))


@pytest.mark.parametrize("block", [128, 100], ids=["levels-from-blocks", "levels-from-files"])
def test_cog_overviews_are_nan_means_of_scores_and_samples_of_class_ids(
    tmp_path, nc_bundle, nc_stack, block
):
    labels = geoxr.predict_scene(
        nc_bundle, geoxr.RasterioSource(nc_stack), chip_size=64, stride=32, block_size=block
    )
    scores = labels.scores.values
    scores[:, :37, :51] = np.nan  # a nodata corner: overviews must leave NaN out
    ids = labels.class_ids.values
    labels = SemanticSegmentationLabels(
        grid=labels.grid,
        class_config=labels.class_config,
        scores=labels.scores.copy(data=da.from_array(scores, chunks=(-1, block, block))),
        class_ids=labels.class_ids.copy(data=da.from_array(ids, chunks=block)),
    )
    ids_path, scores_path = tmp_path / "ids.tif", tmp_path / "scores.tif"
    write_cog_labels(labels, ids_path, scores_path=scores_path, blocksize=128, progress=False)

    expected = {ids_path: ids[None], scores_path: scores}
    for path, values in expected.items():
        assert cog_validate(str(path))[0]
        with rasterio.open(path) as cog:
            assert cog.overviews(1) == [2, 4]  # 489 x 443 in 128-pixel tiles
            for level in range(2):
                values = _reference_halve(values, average=path == scores_path)
                with rasterio.open(path, overview_level=level) as overview:
                    assert overview.shape == values.shape[-2:]
                    assert overview.transform.c == cog.transform.c  # same origin
                    got = overview.read()
                if path == scores_path:
                    np.testing.assert_allclose(got, values, rtol=1e-6, equal_nan=True)
                    assert np.isnan(got[:, 0, 0]).all() and np.isfinite(got).any()
                else:
                    np.testing.assert_array_equal(got, values)


def test_remaining_levels_are_filled_window_by_window(tmp_path):
    rng = np.random.default_rng(0)
    full = rng.random((2, 301, 203)).astype(np.float32)
    full[:, 100:140, 50:90] = np.nan
    paths = [tmp_path / f"{factor}.tif" for factor in (1, 2, 4, 8)]
    for factor, path in zip((1, 2, 4, 8), paths, strict=True):
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=-(-203 // factor),
            height=-(-301 // factor),
            count=2,
            dtype="float32",
            crs="EPSG:32119",
            transform=from_origin(620000, 230000, 28.5 * factor, 28.5 * factor),
            nodata=np.nan,
        ) as dst:
            if factor == 1:
                dst.write(full)
    write_remaining_levels(paths, 1, average=True, window=64)  # each 64-px window read once
    expected = full
    for path in paths[1:]:
        expected = _reference_halve(expected, average=True)
        with rasterio.open(path) as level:
            np.testing.assert_allclose(level.read(), expected, rtol=1e-6, equal_nan=True)
