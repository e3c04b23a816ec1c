import json

import numpy as np
import pytest
import shapely
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

import geoxr
from geoxr.evaluate import confusion_matrix_lazy
from geoxr.grid import Grid
from geoxr.testing import raise_if_dask_computes


@pytest.fixture(scope="module")
def nc_truth_and_prediction(nc_bundle, nc_stack, nc_strata, nc_class_config):
    scene = geoxr.make_ss_scene(nc_stack, label_raster_uri=nc_strata, class_config=nc_class_config)
    labels = geoxr.predict_scene(
        nc_bundle, scene.raster_source, chip_size=64, stride=32, block_size=128
    )
    return scene, labels


def numpy_metrics(truth, pred, n, null):
    keep = (truth != null) & (pred != null)
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (truth[keep], pred[keep]), 1)
    return cm


def test_confusion_matrix_is_a_lazy_reduction_equal_to_numpy(nc_truth_and_prediction):
    scene, labels = nc_truth_and_prediction
    with raise_if_dask_computes():
        lazy = confusion_matrix_lazy(scene.label_source.data, labels.class_ids, 8, ignore=[0])
    truth, pred = scene.label_source.data.values, labels.class_ids.values
    np.testing.assert_array_equal(lazy.compute(), numpy_metrics(truth, pred, 8, 0))


def test_evaluator_metrics_ignore_null_nodata_and_outside_aoi(
    tmp_path, nc_truth_and_prediction, nc_class_config
):
    scene, labels = nc_truth_and_prediction
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    metrics = evaluator.evaluate(scene.label_source, labels)
    truth, pred = scene.label_source.data.values, labels.class_ids.values
    cm = numpy_metrics(truth, pred, 8, 0)
    assert metrics["confusion_matrix"] == cm.tolist()
    assert metrics["pixels"] == cm.sum() == ((truth != 0) & (pred != 0)).sum()
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    forest = metrics["per_class"]["forest"]
    tp = cm[5, 5]
    assert forest["iou"] == pytest.approx(tp / (cm[5].sum() + cm[:, 5].sum() - tp))
    assert forest["precision"] == pytest.approx(tp / cm[:, 5].sum())
    assert forest["recall"] == pytest.approx(tp / cm[5].sum())
    assert forest["f1"] == pytest.approx(2 * tp / (cm[5].sum() + cm[:, 5].sum()))
    assert forest["support"] == cm[5].sum()
    assert "null" not in metrics["per_class"]
    saved = json.loads(evaluator.save(metrics, tmp_path / "m.json").read_text())
    assert saved["miou"] == pytest.approx(metrics["miou"])

    left, bottom, right, top = scene.grid.bounds
    west = shapely.box(left, bottom, (left + right) / 2, top)
    in_aoi = evaluator.evaluate(scene.label_source, labels, aoi_polygons=[west])
    assert 0 < in_aoi["pixels"] < metrics["pixels"]
    # an AOI beside the scene (sharing its west edge) holds none of its pixels
    beside = shapely.box(left - 1000, bottom, left, top)
    with pytest.raises(geoxr.AOIError, match=r"does not overlap the raster"):
        evaluator.evaluate(scene.label_source, labels, aoi_polygons=[beside])


def test_truth_on_another_grid_is_refused(nc_truth_and_prediction, nc_class_config, sn4_image):
    _, labels = nc_truth_and_prediction
    other = geoxr.RasterioSource(sn4_image).data.isel(band=0)
    with pytest.raises(geoxr.CRSMismatchError, match="evaluate on the prediction's scene grid"):
        geoxr.SemanticSegmentationEvaluator(nc_class_config).evaluate(other, labels)


def test_a_truth_raster_nodata_is_ignored(nc_truth_and_prediction, nc_class_config):
    # It was left out of the prediction too: predictions of class 7 vanished, and with
    # them their errors (a float nodata such as float32's lowest was "class id -2**63").
    scene, labels = nc_truth_and_prediction
    values = scene.label_source.data.values
    pred = labels.class_ids.values.copy()
    pred[::3] = 7  # "sediment" predicted on every third row
    predicted = geoxr.SemanticSegmentationLabels(
        grid=labels.grid,
        class_config=labels.class_config,
        class_ids=labels.class_ids.copy(data=pred),
    )
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    truth = scene.label_source.data.rio.write_nodata(7)  # "sediment" pixels declared nodata
    metrics = evaluator.evaluate(truth, predicted)
    counted = (values != 0) & (values != 7) & (pred != 0)
    assert metrics["pixels"] == counted.sum()
    assert metrics["per_class"]["sediment"]["predicted"] == (counted & (pred == 7)).sum() > 0
    lowest = np.finfo(np.float32).min
    floats = scene.label_source.data.astype(np.float32)
    floats = floats.where(values != 7, lowest).rio.write_nodata(float(lowest))
    assert evaluator.evaluate(floats, predicted) == metrics


def test_ids_and_classes_the_evaluator_does_not_know_are_refused(
    nc_truth_and_prediction, nc_class_config
):
    scene, labels = nc_truth_and_prediction
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    unknown = scene.label_source.data.astype(np.int64)
    unknown = unknown.where(unknown != 7, 12)  # dropped from the matrix before: more accuracy
    with pytest.raises(geoxr.ClassConfigError, match=r"The truth: class ids \[12\] that"):
        evaluator.evaluate(unknown, labels)
    reordered = geoxr.ClassConfig([*nc_class_config.names[1:], "null"], null_class="null")
    other = geoxr.SemanticSegmentationLabels(
        grid=labels.grid, class_config=reordered, class_ids=labels.class_ids
    )
    with pytest.raises(
        geoxr.ClassConfigError, match=r"prediction's classes .* are not the evaluator's"
    ):
        evaluator.evaluate(scene.label_source, other)


def test_classes_in_other_colors_are_the_same_classes(nc_truth_and_prediction, nc_class_config):
    # Colors are how classes are drawn, not what their ids mean: an evaluator made with
    # other colors (say, a map's palette) refused the prediction.
    scene, labels = nc_truth_and_prediction
    palette = geoxr.ClassConfig(
        nc_class_config.names,
        colors=[(i, 2 * i, 3 * i) for i in range(len(nc_class_config))],
        null_class=nc_class_config.null_class,
    )
    assert palette != nc_class_config
    metrics = geoxr.SemanticSegmentationEvaluator(palette).evaluate(scene.label_source, labels)
    expected = geoxr.SemanticSegmentationEvaluator(nc_class_config).evaluate(
        scene.label_source, labels
    )
    assert metrics == expected and metrics["pixels"] > 0


def test_a_one_band_truth_as_rioxarray_opens_it(nc_truth_and_prediction, nc_class_config):
    # open_rasterio gives (band, y, x): a raw ValueError from dask before.
    scene, labels = nc_truth_and_prediction
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    flat = scene.label_source.data
    banded = flat.expand_dims(band=[1])
    assert evaluator.evaluate(banded, labels) == evaluator.evaluate(flat, labels)
    with pytest.raises(geoxr.LabelsError, match=r"dims \('band', 'y', 'x'\); expected"):
        evaluator.evaluate(xr.concat([banded, banded], "band"), labels)
    # The prediction's class ids too, and a store writes them: labels took them as they
    # were, then the evaluator and the Zarr store failed with raw errors.
    predicted = geoxr.SemanticSegmentationLabels(
        grid=labels.grid,
        class_config=labels.class_config,
        class_ids=labels.class_ids.expand_dims(band=[1]),
    )
    assert predicted.class_ids.dims == ("y", "x")
    assert evaluator.evaluate(flat, predicted) == evaluator.evaluate(flat, labels)
    with pytest.raises(geoxr.LabelsError, match=r"Labels class_ids .* dims \('band', 'y', 'x'\)"):
        geoxr.SemanticSegmentationLabels(
            grid=labels.grid,
            class_config=labels.class_config,
            class_ids=xr.concat([banded, banded], "band"),
        )


def test_metrics_of_no_pixels_save_as_json_null(
    tmp_path, nc_truth_and_prediction, nc_class_config
):
    scene, labels = nc_truth_and_prediction
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    left, _, _, top = scene.grid.bounds
    corner = shapely.box(left, top - 1, left + 1, top)  # inside no pixel centre
    metrics = evaluator.evaluate(scene.label_source, labels, aoi_polygons=[corner])
    assert metrics["pixels"] == 0 and np.isnan(metrics["miou"])
    saved = evaluator.save(metrics, tmp_path / "m.json").read_text()
    assert "NaN" not in saved and json.loads(saved)["miou"] is None


def test_a_truth_nodata_with_256_classes_and_more_leaves_its_pixels_out():
    # The null class (id 256) replaced the nodata value in the truth's own uint8: it
    # wrapped round to class 0, and those pixels counted as errors.
    grid = Grid(CRS.from_epsg(32616), Affine(1, 0, 0, 0, -1, 2), (2, 2))
    config = geoxr.ClassConfig([f"c{i}" for i in range(256)])
    truth = grid.wrap(np.array([[1, 255], [2, 3]], np.uint8), dims=("y", "x"))
    predicted = geoxr.SemanticSegmentationLabels(
        grid=grid,
        class_config=config,
        class_ids=grid.wrap(np.array([[1, 5], [2, 3]], np.int32), dims=("y", "x")),
    )
    evaluator = geoxr.SemanticSegmentationEvaluator(config)
    metrics = evaluator.evaluate(truth.rio.write_nodata(255), predicted)
    assert (metrics["pixels"], metrics["accuracy"]) == (3, 1.0)


def test_a_prediction_read_back_as_a_dataarray_is_evaluated(
    nc_truth_and_prediction, nc_class_config
):
    # A prediction given as a DataArray (a COG read back with rioxarray) or a label source
    # raised "AttributeError: ... has no attribute 'class_ids'", as a numpy truth did.
    scene, labels = nc_truth_and_prediction
    evaluator = geoxr.SemanticSegmentationEvaluator(nc_class_config)
    expected = evaluator.evaluate(scene.label_source, labels)
    assert evaluator.evaluate(scene.label_source, labels.class_ids) == expected
    assert evaluator.evaluate(scene.label_source, labels.class_ids.expand_dims(band=[1])) == (
        expected
    )
    with pytest.raises(geoxr.LabelsError, match=r"The truth is a ndarray; expected"):
        evaluator.evaluate(scene.label_source.data.values, labels)
