"""Label sources: ground truth for any window of a scene."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from geoxr.errors import ClassConfigError
from geoxr.grid import Grid, Window, window_of_block
from geoxr.label.class_config import ClassConfig
from geoxr.read import RasterSource

__all__ = ["SemanticSegmentationLabelSource"]


class SemanticSegmentationLabelSource:
    """Per-pixel class ids for any window, read from a label raster source.

    The raster source is a label raster (:class:`~geoxr.RasterioSource`, aligned
    to the image grid) or polygons rasterized per window
    (:class:`~geoxr.RasterizedSource`). Nodata and pixels past the edge become
    the null class; the config gets a ``"null"`` class if it has none.

    Parameters
    ----------
    raster_source : RasterSource
        Single-band source of class ids on the image grid.
    class_config : ClassConfig
        The classes; an id the config (with its null class) does not have is an error.

    Examples
    --------
    >>> import os
    >>> src = geoxr.RasterioSource(os.path.join(DATA, "nc_landsat7_raleigh/landclass96_strata.tif"))
    >>> names = ["null", "developed", "agriculture", "herbaceous", "shrubland", "forest",
    ...          "water", "sediment"]
    >>> ls = SemanticSegmentationLabelSource(src, ClassConfig(names, null_class="null"))
    >>> ls.get_label_arr(Window(0, 0, 2, 4))
    array([[5, 4, 5, 5],
           [4, 4, 5, 5]])
    """

    def __init__(self, raster_source: RasterSource, class_config: ClassConfig) -> None:
        if raster_source.num_channels != 1:
            raise ClassConfigError(
                f"Label raster {raster_source!r} has {raster_source.num_channels} bands; expected "
                "one band of class ids. Pick the band with channel_order=[i]."
            )
        if raster_source.chip_prefix != (1,):
            raise ClassConfigError(
                f"Label raster {raster_source!r} is a time series of "
                f"{raster_source.chip_prefix[0]} dates; expected one band of class ids. Give "
                "the label raster of one date."
            )
        self.raster_source = raster_source
        self.class_config = class_config.ensure_null_class()
        self.null_class_id = class_config.ignore_class_id

    @property
    def grid(self) -> Grid:
        """The grid labels are on (the image grid)."""
        return self.raster_source.grid

    def get_label_arr(self, window: Window, *, out: np.ndarray | None = None) -> np.ndarray:
        """``(y, x)`` int64 class ids of a window; null where there is no label.

        ``out``, an int64 array of the window's shape, receives the ids (for
        example a slot of a batch) instead of a new array.
        """
        # In the raster's own (often uint8) dtype: checked there, cast once into out. GDAL
        # casting into int64 as it decodes costs more (69 against 52 us a 256 px chip).
        values = np.empty((1, *window.shape), self.raster_source.dtype)
        invalid = self.raster_source.read_into(window, values)
        return self._to_class_ids(values[0], invalid, out)

    def __getitem__(self, window: Window) -> np.ndarray:
        return self.get_label_arr(window)

    def _to_class_ids(
        self, values: np.ndarray, invalid: np.ndarray | None, out: np.ndarray | None = None
    ) -> np.ndarray:
        if invalid is not None:
            values = np.where(invalid, self.null_class_id, values)
        self.class_config.check_class_ids(
            values,
            label=lambda: f"Label raster {self.raster_source!r}",
            fix="Add the classes, or declare the value as the label raster's nodata.",
        )
        if out is None:
            return values.astype(np.int64)
        np.copyto(out, values, casting="unsafe")  # as astype: float ids are truncated
        return out

    @property
    def data(self) -> xr.DataArray:
        """Lazy ``(y, x)`` int64 class ids over the whole scene, one task per block."""
        values = self.raster_source.data.isel(band=0)
        chunks = values.chunks or tuple((n,) for n in values.shape)

        def block_ids(block_info: dict[Any, Any] | None = None) -> np.ndarray:
            # The same windowed read as chips: masks, nodata and transformers agree.
            return self.get_label_arr(window_of_block(block_info))

        ids = da.map_blocks(
            block_ids,
            chunks=chunks,
            dtype=np.int64,
            meta=np.array((), np.int64),
            name="geoxr-label-ids-" + tokenize(self.raster_source, self.class_config, chunks),
        )
        out = values.copy(data=ids).rename("class_id")
        return out.rio.write_nodata(self.null_class_id, encoded=False)
