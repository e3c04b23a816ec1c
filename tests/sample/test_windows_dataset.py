"""Tests of geoxr.sample: sliding and random window datasets on the real NC scene."""

import copy
import gc
import pickle
import threading
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import rasterio.windows
import shapely
import torch
from torch.utils.data import DataLoader, Subset

import geoxr
from geoxr import (
    GeoDataset,
    Scene,
    SemanticSegmentationRandomWindowGeoDataset,
    SemanticSegmentationSlidingWindowGeoDataset,
    Window,
    make_ss_scene,
)
from geoxr.testing import coverage_count as coverage

NODATA = -99999.0
# An AOI over pixel rows [50, 300) and columns [70, 330) of the NC scene.
AOI_ROWS, AOI_COLS = (50, 300), (70, 330)


@pytest.fixture(scope="module")
def nc_scene(nc_stack, nc_strata, nc_class_config):
    return make_ss_scene(nc_stack, class_config=nc_class_config, label_raster_uri=nc_strata)


@pytest.fixture(scope="module")
def nc_aoi(nc_scene):
    grid = nc_scene.grid
    window = Window.from_box(AOI_ROWS[0], AOI_COLS[0], AOI_ROWS[1], AOI_COLS[1])
    return shapely.box(*grid.window_bounds(window))


@pytest.fixture(scope="module")
def nc_aoi_scene(nc_scene, nc_aoi):
    return Scene("nc-aoi", nc_scene.raster_source, nc_scene.label_source, aoi_polygons=[nc_aoi])


def expected_sample(image_path, label_path, window):
    """Image and mask of a window, straight from rasterio (boundless reads)."""
    rio_window = window.to_rasterio()
    with rasterio.open(image_path) as ds:
        image = ds.read(window=rio_window, boundless=True, fill_value=NODATA)
    with rasterio.open(label_path) as ds:
        labels = ds.read(1, window=rio_window, boundless=True, fill_value=NODATA)
    image_nodata = (image == NODATA).any(axis=0)  # a pixel is nodata where any band is
    image = np.where(image_nodata, 0, image).astype(np.float32)
    mask = np.where(image_nodata | (labels == NODATA), 0, labels).astype(np.int64)
    return image, mask


# ---------------------------------------------------------------------------- sliding


@pytest.fixture(scope="module")
def sliding(nc_scene):
    return SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=128, stride=100)


def test_sliding_windows_plan(sliding):
    # ceil((443 - 128) / 100) + 1 = 5 rows, ceil((489 - 128) / 100) + 1 = 5 columns.
    assert len(sliding) == 25
    assert sliding.windows[0] == Window(0, 0, 128, 128)
    assert sliding.windows[-1] == Window(400, 400, 128, 128)
    counts = coverage((443, 489), sliding.windows)
    assert counts.min() >= 1, f"{int((counts == 0).sum())} pixels not covered"


@pytest.mark.parametrize("index", [0, 6, 12, 24])
def test_sliding_items_equal_rasterio(sliding, nc_stack, nc_strata, index):
    image, mask = sliding[index]
    window = sliding.windows[index]
    expected_image, expected_mask = expected_sample(nc_stack, nc_strata, window)
    assert image.dtype == torch.float32 and image.shape == (6, 128, 128)
    assert mask.dtype == torch.int64 and mask.shape == (128, 128)
    assert torch.equal(image, torch.from_numpy(expected_image))
    assert torch.equal(mask, torch.from_numpy(expected_mask))


def test_sliding_item_with_nodata_and_edge(sliding, nc_stack, nc_strata):
    # The last window reaches past both edges; the first holds the nodata collar.
    for index in (0, 24):
        _, mask = sliding[index]
        _, expected_mask = expected_sample(nc_stack, nc_strata, sliding.windows[index])
        assert (expected_mask == 0).sum() > 1000
        assert torch.equal(mask, torch.from_numpy(expected_mask))
    _, mask = sliding[24]
    assert (mask[43:, :] == 0).all() and (mask[:, 89:] == 0).all()


def test_chip_georeference_matches_rasterio(sliding, nc_stack):
    with rasterio.open(nc_stack) as ds:
        transform = ds.transform
    for window in sliding.windows:
        expected = rasterio.windows.transform(window.to_rasterio(), transform)
        assert sliding.scene.grid.window_transform(window).almost_equals(expected, precision=1e-9)


def test_sliding_padding_options(nc_scene):
    ds = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=128, stride=128, padding=0)
    assert all(nc_scene.grid.extent.contains(w) for w in ds.windows)
    assert coverage((443, 489), ds.windows).min() >= 1
    ds = SemanticSegmentationSlidingWindowGeoDataset(
        nc_scene, size=(100, 150), stride=(100, 150), pad_direction="start"
    )
    assert ds.windows[0] == Window(-57, -111, 100, 150)
    assert coverage((443, 489), ds.windows).min() >= 1


def test_sliding_padding_of_a_whole_window_raises(nc_scene):
    # Padding 64 with 64 px windows planned windows past the edge with no scene pixel.
    with pytest.raises(geoxr.WindowError, match=r"padding 64 px is not below the window"):
        SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=64, stride=64, padding=64)
    ds = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=64, stride=64, padding=63)
    assert all(w.intersection(nc_scene.grid.extent) is not None for w in ds.windows)
    assert ds.windows[-1] == Window(384, 448, 64, 64)


def test_pickle_round_trip(nc_scene):
    ds = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=64, stride=64)
    ds.__getitems__([0, 1, 2])  # starts the dataset's thread pool
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.windows == ds.windows and len(clone) == len(ds)
    for index in (0, 5, len(ds) - 1):
        for a, b in zip(clone[index], ds[index], strict=True):
            assert torch.equal(a, b)


def test_a_dataset_pickled_with_its_reader_loads(nc_scene):
    # Earlier geoxr pickled a dataset with its reader: only the reader's setting stays.
    ds = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=64, stride=64)
    state = ds.__getstate__()
    del state["_reuse_batch_memory"]
    state["_reader"] = SimpleNamespace(reuse_memory=False)
    old = object.__new__(type(ds))
    old.__setstate__(state)
    assert old._reuse_batch_memory is False
    for item, expected in zip(old.__getitems__([0, 1, 2]), [ds[0], ds[1], ds[2]], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(item, expected, strict=True))


def test_a_dropped_dataset_is_freed_at_once_with_its_reader_threads(nc_scene):
    # No reference cycle keeps a dropped dataset, its reader threads and their GDAL
    # handles (with every tile they decoded) until the garbage collector runs.
    before = set(threading.enumerate())
    ds = SemanticSegmentationRandomWindowGeoDataset(
        nc_scene, size_lims=(64, 65), max_windows=32, seed=1
    )
    assert len(list(DataLoader(ds, batch_size=8))) == 4  # starts the reader's threads
    readers = set(threading.enumerate()) - before
    assert readers
    dropped = weakref.ref(ds)
    gc.disable()
    try:
        del ds
        assert dropped() is None
    finally:
        gc.enable()
    for thread in readers:
        thread.join(10)
        assert not thread.is_alive()


def _flip(image, mask):
    return image.flip(-1), mask.flip(-1)


@pytest.mark.parametrize(
    "make_copy",
    [copy.copy, copy.deepcopy, lambda dataset: pickle.loads(pickle.dumps(dataset))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_a_copy_reads_with_its_own_settings_after_its_original_is_dropped(nc_scene, make_copy):
    # A copy given another transform (a validation set made from a training set)
    # fetches its batches with that transform, and lives on without its original.
    original = SemanticSegmentationRandomWindowGeoDataset(
        nc_scene, size_lims=(64, 65), max_windows=8, seed=1
    )
    expected = [_flip(*original[i]) for i in range(4)]
    copied = make_copy(original)
    copied.transform = _flip
    del original
    images, masks = next(iter(DataLoader(copied, batch_size=4)))
    for k, (image, mask) in enumerate(expected):
        assert torch.equal(images[k], image) and torch.equal(masks[k], mask)


def test_scene_without_labels_gives_nan_mask(nc_stack):
    scene = make_ss_scene(nc_stack, class_config=geoxr.ClassConfig(["a"]))
    image, mask = GeoDataset(scene, [Window(0, 0, 16, 16)])[0]
    assert image.shape == (6, 16, 16)
    assert mask.ndim == 0 and torch.isnan(mask)


def test_images_are_float32_whatever_torchs_default_dtype(nc_scene):
    window = Window(100, 100, 32, 32)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        one = GeoDataset(nc_scene, [window])[0]
        flipped = GeoDataset(nc_scene, [window], transform=lambda x, y: (x.flip(-1), y))[0]
    finally:
        torch.set_default_dtype(default)
    assert one.image.dtype == flipped.image.dtype == torch.float32


def test_transform_is_applied_last(nc_scene):
    def flip(image, mask):
        return image.flip(-1), mask.flip(-1)

    window = Window(100, 100, 32, 32)
    plain = GeoDataset(nc_scene, [window])[0]
    flipped = GeoDataset(nc_scene, [window], transform=flip)[0]
    assert torch.equal(flipped[0], plain[0].flip(-1))
    assert torch.equal(flipped[1], plain[1].flip(-1))


def test_normalize_true_scales_unsigned_integers_as_raster_vision_does(
    rgb_byte, sn4_image, nc_stack
):
    window = Window(100, 100, 32, 32)
    for path, top in ((rgb_byte, 255.0), (sn4_image, 65535.0), (nc_stack, None)):
        scene = make_ss_scene(path, class_config=geoxr.ClassConfig(["a"]))
        raw = GeoDataset(scene, [window], normalize=False)[0].image
        scaled = GeoDataset(scene, [window], normalize=True)
        if top is None:  # floats stay as they are
            assert scaled.normalize is None and torch.equal(scaled[0].image, raw)
        else:
            torch.testing.assert_close(scaled[0].image, raw / top)
            assert 0 <= float(scaled[0].image.min()) and float(scaled[0].image.max()) <= 1
        assert GeoDataset(scene, [window], normalize=False).normalize is None


def test_from_uris(nc_stack, nc_strata, nc_class_config):
    ds = SemanticSegmentationSlidingWindowGeoDataset.from_uris(
        nc_stack,
        label_raster_uri=nc_strata,
        class_config=nc_class_config,
        size=200,
        stride=200,
    )
    assert len(ds) == 9 and ds.scene.id == "lsat7_2000_stack"
    image, mask = ds[4]
    expected_image, expected_mask = expected_sample(
        nc_stack, nc_strata, Window(200, 200, 200, 200)
    )
    assert torch.equal(image, torch.from_numpy(expected_image))
    assert torch.equal(mask, torch.from_numpy(expected_mask))


# ---------------------------------------------------------------------------- AOI


def test_aoi_within_vs_intersects_counts(nc_aoi_scene):
    # 64 px windows on a 64 px grid; the AOI spans rows [50, 300) and columns [70, 330).
    within = SemanticSegmentationSlidingWindowGeoDataset(nc_aoi_scene, size=64, stride=64)
    inter = SemanticSegmentationSlidingWindowGeoDataset(
        nc_aoi_scene, size=64, stride=64, within_aoi=False
    )
    everything = SemanticSegmentationSlidingWindowGeoDataset(
        Scene("nc", nc_aoi_scene.raster_source), size=64, stride=64
    )
    assert len(everything) == 7 * 8
    # within: rows 64, 128, 192 and columns 128, 192, 256.
    assert within.windows == [
        Window(r, c, 64, 64) for r in (64, 128, 192) for c in (128, 192, 256)
    ]
    # intersects: rows 0..256 and columns 64..320.
    assert len(inter) == 25
    assert {w.row_off for w in inter.windows} == {0, 64, 128, 192, 256}
    assert {w.col_off for w in inter.windows} == {64, 128, 192, 256, 320}


def test_outside_aoi_pixels_are_null(nc_aoi_scene, nc_stack, nc_strata):
    ds = SemanticSegmentationSlidingWindowGeoDataset(
        nc_aoi_scene, size=64, stride=64, within_aoi=False
    )
    checked = 0
    for index, window in enumerate(ds.windows):
        if window.row_off not in (0, 256) and window.col_off not in (64, 320):
            continue  # windows cut by the AOI edge only
        image, mask = ds[index]
        expected_image, expected_mask = expected_sample(nc_stack, nc_strata, window)
        rows = np.arange(window.ymin, window.ymax)[:, None]
        cols = np.arange(window.xmin, window.xmax)[None, :]
        inside = (
            (rows >= AOI_ROWS[0])
            & (rows < AOI_ROWS[1])
            & (cols >= AOI_COLS[0])
            & (cols < AOI_COLS[1])
        )
        assert (~inside).any() and inside.any()
        assert torch.equal(mask, torch.from_numpy(np.where(inside, expected_mask, 0)))
        assert torch.equal(image, torch.from_numpy(expected_image))  # the image is not cut
        checked += 1
    assert checked == 16


def test_random_windows_stay_inside_aoi(nc_aoi_scene):
    ds = SemanticSegmentationRandomWindowGeoDataset(
        nc_aoi_scene, size_lims=(20, 60), max_windows=12, out_size=32, seed=5
    )
    assert len(ds) == 12
    for window in ds.windows:
        assert AOI_ROWS[0] <= window.ymin and window.ymax <= AOI_ROWS[1], window
        assert AOI_COLS[0] <= window.xmin and window.xmax <= AOI_COLS[1], window
    touching = SemanticSegmentationRandomWindowGeoDataset(
        nc_aoi_scene, size_lims=(20, 60), max_windows=12, out_size=32, seed=5, within_aoi=False
    )
    box = Window.from_box(AOI_ROWS[0], AOI_COLS[0], AOI_ROWS[1], AOI_COLS[1])
    assert all(box.intersection(w) is not None for w in touching.windows)
    assert any(not box.contains(w) for w in touching.windows)


@pytest.mark.parametrize("within_aoi", [True, False])
def test_an_aoi_beside_the_scene_raises_before_any_window_is_planned(nc_scene, within_aoi):
    # The AOI shares only the scene's left edge; it used to give an empty dataset.
    left, bottom, _, top = nc_scene.grid.bounds
    beside = shapely.box(left - 3000, bottom, left, top)
    with pytest.raises(geoxr.AOIError, match=r"(?s)does not overlap the raster.*wrong file"):
        scene = Scene("nc", nc_scene.raster_source, aoi_polygons=[beside])
        SemanticSegmentationSlidingWindowGeoDataset(
            scene, size=64, stride=64, within_aoi=within_aoi
        )


def test_random_windows_that_cannot_fit_the_aoi_raise(nc_aoi_scene):
    with pytest.raises(geoxr.WindowError, match="No random window"):
        SemanticSegmentationRandomWindowGeoDataset(
            nc_aoi_scene, size_lims=(260, 270), max_windows=2, seed=0, max_sample_attempts=5
        )


def test_sliding_windows_that_cannot_fit_the_aoi_raise(nc_aoi_scene):
    # The AOI is 250 rows high: no 256 px window lies within it.
    with pytest.raises(geoxr.WindowError, match=r"No sliding window of size 256 .*'nc-aoi'"):
        SemanticSegmentationSlidingWindowGeoDataset(nc_aoi_scene, size=256, stride=64)
    touching = SemanticSegmentationSlidingWindowGeoDataset(
        nc_aoi_scene, size=256, stride=64, within_aoi=False
    )
    assert len(touching) == 20 and touching.windows[0] == Window(0, 0, 256, 256)


# ---------------------------------------------------------------------------- random


def test_random_dataset_seeded(nc_scene):
    kw = {"size_lims": (24, 80), "max_windows": 6, "out_size": 32}
    a = SemanticSegmentationRandomWindowGeoDataset(nc_scene, seed=11, **kw)
    b = SemanticSegmentationRandomWindowGeoDataset(nc_scene, seed=11, **kw)
    c = SemanticSegmentationRandomWindowGeoDataset(nc_scene, seed=12, **kw)
    assert a.windows == b.windows and a.windows != c.windows
    assert len({w.shape for w in a.windows}) > 1
    for index in range(len(a)):
        assert torch.equal(a[index][0], b[index][0]) and torch.equal(a[index][1], b[index][1])
    assert not all(torch.equal(a[i][0], c[i][0]) for i in range(len(a)))
    unseeded = SemanticSegmentationRandomWindowGeoDataset(nc_scene, **kw)
    assert isinstance(unseeded.seed, int)
    again = SemanticSegmentationRandomWindowGeoDataset(nc_scene, seed=unseeded.seed, **kw)
    assert again.windows == unseeded.windows


def test_random_dataset_out_size(nc_scene, nc_stack, nc_strata):
    ds = SemanticSegmentationRandomWindowGeoDataset(
        nc_scene, h_lims=(20, 60), w_lims=(30, 90), max_windows=4, out_size=(40, 24), seed=3
    )
    for index, window in enumerate(ds.windows):
        image, mask = ds[index]
        assert image.shape == (6, 40, 24) and image.dtype == torch.float32
        assert mask.shape == (40, 24) and mask.dtype == torch.int64
        _, expected_mask = expected_sample(nc_stack, nc_strata, window)
        # Nearest-neighbour resizing only picks labels that the window has.
        assert set(mask.unique().tolist()) <= set(np.unique(expected_mask).tolist())
    # A window already at out_size is not resampled.
    same = SemanticSegmentationRandomWindowGeoDataset(
        nc_scene, size_lims=(32, 33), max_windows=2, out_size=32, seed=3
    )
    image, mask = same[0]
    expected_image, expected_mask = expected_sample(nc_stack, nc_strata, same.windows[0])
    assert torch.equal(image, torch.from_numpy(expected_image))
    assert torch.equal(mask, torch.from_numpy(expected_mask))


# ---------------------------------------------------------------------------- DataLoader


def load_all(dataset, num_workers, **loader_options):
    # A timeout turns a stuck worker into a failure instead of a hung test run.
    options = ({"timeout": 10} if num_workers else {}) | loader_options
    return list(DataLoader(dataset, batch_size=3, num_workers=num_workers, **options))


@pytest.mark.parametrize("kind", ["sliding", "random"])
def test_dataloader_num_workers_give_identical_batches(nc_scene, kind):
    if kind == "sliding":
        full = SemanticSegmentationSlidingWindowGeoDataset(nc_scene, size=64, stride=64)
        dataset = Subset(full, [0, 3, 9, 17, 30, 55])
    else:
        dataset = SemanticSegmentationRandomWindowGeoDataset(
            nc_scene, size_lims=(24, 72), max_windows=6, out_size=48, seed=2
        )
    reference = load_all(dataset, 0)
    assert len(reference) == 2
    images, masks = reference[0]
    assert images.shape[:2] == (3, 6) and masks.dtype == torch.int64
    for num_workers in (1, 2):
        batches = load_all(dataset, num_workers)
        assert len(batches) == len(reference)
        for (x, y), (rx, ry) in zip(batches, reference, strict=True):
            assert torch.equal(x, rx) and torch.equal(y, ry), num_workers


def test_spawned_workers_give_identical_batches(nc_scene):
    # Workers started by spawn (the default on macOS and Windows) unpickle the dataset.
    dataset = SemanticSegmentationRandomWindowGeoDataset(
        nc_scene, size_lims=(64, 65), max_windows=6, seed=2
    )
    reference = load_all(dataset, 0)
    # A spawned worker imports torch and geoxr before its first batch: more time.
    spawned = load_all(dataset, 2, multiprocessing_context="spawn", timeout=60)
    assert len(spawned) == len(reference) == 2
    for (x, y), (rx, ry) in zip(spawned, reference, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_a_resized_mask_labels_the_resized_images_pixels(nc_scene):
    # The mask was resized top-left aligned ('nearest'), the image centre aligned
    # (bilinear, align_corners=False): at 4x the mask sat 1.5 pixels up and left.
    window = Window(100, 100, 64, 64)
    small = GeoDataset(nc_scene, [window], out_size=16)
    full = GeoDataset(nc_scene, [window])
    mask = small[0].mask
    whole = full[0].mask
    # Output pixel i covers source pixels 4i..4i+3: its centre lies between 4i+1 and 4i+2.
    np.testing.assert_array_equal(mask.numpy(), whole.numpy()[2::4, 2::4])
    image = small[0].image
    # Bilinear at 4x samples 4i + 1.5: the mean of source pixels 4i+1 and 4i+2 on each axis.
    centres = torch.nn.functional.avg_pool2d(full[0].image[None, :, 1:, 1:], 2, stride=4)[0]
    torch.testing.assert_close(image, centres)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"normalize": "Stats"}, geoxr.ConfigError, r"normalize='Stats': expected BandStats"),
        (
            {"normalize": geoxr.BandStats((1.0,) * 3, (1.0,) * 3)},
            geoxr.BandCountError,
            r"statistics of 3 bands, but scene .* has 6",
        ),
        ({"out_size": 0}, geoxr.ConfigError, r"out_size must be at least 1 pixel"),
        ({"out_size": 32.0}, geoxr.WindowError, r"out_size must be an int"),
    ],
)
def test_bad_normalize_or_out_size_is_refused_at_construction(nc_scene, kwargs, error, match):
    # They failed on the first sample read (perhaps in a worker) with raw errors.
    with pytest.raises(error, match=match):
        GeoDataset(nc_scene, [Window(0, 0, 32, 32)], **kwargs)


def test_sliding_dataset_takes_size_and_stride_as_lists(nc_scene):
    # sliding_windows takes them; the dataset compared a list with an int (TypeError).
    ds = SemanticSegmentationSlidingWindowGeoDataset(
        nc_scene, size=[32, 48], stride=np.array([32, 48])
    )
    assert (
        ds.windows
        == SemanticSegmentationSlidingWindowGeoDataset(
            nc_scene, size=(32, 48), stride=(32, 48)
        ).windows
    )


def _jitter(image, mask):
    """A random augmentation drawing from torch's global generator."""
    return image + torch.rand(()), mask


def test_a_random_transform_gives_the_same_batches_for_the_same_seed(nc_scene):
    # It ran in the reader threads, which drew from the global generator in whatever
    # order they ran: two seeded runs differed by up to 0.93.
    ds = geoxr.SemanticSegmentationSlidingWindowGeoDataset(
        nc_scene, size=64, stride=64, transform=_jitter
    )

    def run():
        torch.manual_seed(0)
        return torch.cat([x for x, _ in DataLoader(Subset(ds, range(48)), batch_size=8)])

    first, second = run(), run()
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    untransformed = geoxr.GeoDataset(nc_scene, ds.windows[:48])
    shift = first - torch.stack([untransformed[i][0] for i in range(48)])
    assert len({round(float(v), 6) for v in shift.amax(dim=(1, 2, 3))}) == 48  # one draw each


class _Doubled(geoxr.GeoDataset):
    def __getitem__(self, index):
        x, y = super().__getitem__(index)
        return x * 2, y


def test_a_subclass_getitem_gives_batches_too_and_windows_are_checked(nc_scene):
    # Batches of 2 or more skipped the subclass's __getitem__ (its augmentation dropped).
    windows = geoxr.sliding_windows(nc_scene.grid.shape, 64, 64)[:8]
    ds = _Doubled(nc_scene, windows)
    batch, _ = next(iter(DataLoader(ds, batch_size=4)))
    torch.testing.assert_close(batch[1], ds[1][0])
    # Windows of another kind failed at the first read (maybe in a worker), unnamed.
    rio = rasterio.windows.Window(0, 0, 64, 64)
    with pytest.raises(geoxr.WindowError, match=r"Window 1 of the dataset is a Window .*rasterio"):
        geoxr.GeoDataset(nc_scene, [windows[0], rio])
    with pytest.raises(geoxr.ConfigError, match=r"transform=1 is not callable"):
        geoxr.GeoDataset(nc_scene, windows, transform=1)
