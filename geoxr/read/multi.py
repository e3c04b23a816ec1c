"""MultiRasterSource: several rasters on different grids, stacked along ``band`` on one grid."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import shapely
import xarray as xr
from dask.base import tokenize
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from geoxr.errors import ConfigError, CRSMismatchError, GeoxrWarning
from geoxr.grid import Grid, Window
from geoxr.read._base import RasterSource, resolve_channels
from geoxr.read.raster import RasterioSource
from geoxr.read.transformers import RasterTransformer, checked_transformers

__all__ = ["MultiRasterSource", "align_to", "check_overlap", "read_all"]


def check_overlap(
    bounds: tuple[float, ...], crs: CRS, grid: Grid, *, what: str, onto: str = "the primary grid"
) -> None:
    """Raise if ``bounds`` (in ``crs``) do not overlap ``grid`` (compared in ``grid.crs``).

    ``what`` names the data in ``bounds`` and ``onto`` the grid in the message.
    """
    bounds = transform_bounds(crs, grid.crs, *bounds, densify_pts=21)
    if shapely.box(*bounds).intersection(shapely.box(*grid.bounds)).area == 0:
        raise CRSMismatchError(
            f"{what} (bounds {tuple(round(b, 3) for b in bounds)} in {grid.crs}) and {onto} "
            f"(bounds {grid.bounds}) do not overlap. Check the files cover the same area and "
            "declare the right CRS (for longitude/latitude: x is the longitude)."
        )


def stack_nodata(dtype: np.dtype, sources: Sequence[RasterSource]) -> float | None:
    """The nodata of a stack of ``sources`` (the primary first) whose chips are ``dtype``.

    ``None`` for floats (NaN marks masked pixels); for integers, the primary's. A
    value of another source's could be a valid value of the primary's bands, so
    none is borrowed: where the primary declares none but another does, a
    :class:`~geoxr.GeoxrWarning` says that ``.data`` holds that source's masked
    pixels as 0 (chips keep their masks).
    """
    if np.dtype(dtype).kind == "f":
        return None
    primary, *others = sources
    if primary.nodata is None:
        masking = [repr(s) for s in others if s.nodata is not None and not np.isnan(s.nodata)]
        if masking:
            warnings.warn(
                f"The stack's primary source {primary!r} declares no nodata, so integer .data "
                f"holds the pixels that {masking} mask as 0, which counts as data (band "
                "statistics of .data, writers). Chips keep their masks. Declare nodata= on the "
                "primary (a value none of its bands holds), or read the stack as floats.",
                GeoxrWarning,
                stacklevel=3,
            )
    return primary.nodata


def align_to(source: RasterSource, grid: Grid, *, resampling: str, what: str) -> RasterSource:
    """``source`` itself if it is on ``grid``; else the same file(s) read on it.

    See :meth:`RasterioSource.on_grid` (a crop where ``grid`` is made of the
    source's own pixels, else a warp that keeps the source's crop) and
    :meth:`MultiRasterSource.on_grid`.
    """
    if source.grid.aligned_with(grid):
        return source
    check_overlap(source.bounds, source.crs, grid, what=f"{what} {source!r}")
    if isinstance(source, RasterioSource | MultiRasterSource):
        return source.on_grid(grid, resampling=resampling)
    raise CRSMismatchError(
        f"{what} {source!r} is on {source.grid.crs.to_string()} {source.grid.shape} but must be "
        f"on the primary grid {grid.crs.to_string()} {grid.shape}. Open it with RasterioSource "
        "(warped per window through GDAL), or reproject it with `data.rio.reproject_match(...)`."
    )


def read_all(
    sources: Sequence[RasterSource],
    window: Window,
    dtype: np.dtype,
    combine: Callable[[list[np.ndarray]], np.ndarray],
) -> np.ma.MaskedArray:
    """One window of every source, as ``dtype``, joined by ``combine`` (values and masks)."""
    chips = [s.read(window) for s in sources]
    values = combine([np.ma.getdata(c).astype(dtype, copy=False) for c in chips])
    return np.ma.MaskedArray(values, mask=combine([np.ma.getmaskarray(c) for c in chips]))


class MultiRasterSource(RasterSource):
    """Several raster sources stacked along ``band`` on the primary source's grid.

    Sources with another CRS, resolution or extent are warped onto the primary
    grid window by window through GDAL (never an eager reprojection); pixels a
    source does not cover are masked.

    The dtype is ``numpy.result_type`` of the sources' dtypes. Masks stay per
    band: each band keeps its own source's nodata. In the lazy ``.data``, masked
    pixels are NaN for a float result; for an integer result they take the
    primary source's nodata value (``.nodata``), or 0 where it declares none (a
    :class:`~geoxr.GeoxrWarning` then says so, if another source masks pixels).

    Parameters
    ----------
    raster_sources : sequence of RasterSource
        The sources; their bands are concatenated in order.
    primary_source_idx : int
        The source whose grid (CRS, transform, shape) the stack uses.
    channel_order : sequence of int, optional
        0-based bands of the concatenation to keep, in order.
    resampling : str
        GDAL resampling of warped reads.
    raster_transformers : sequence of RasterTransformer
        Applied to the stacked chips and ``.data``.

    Examples
    --------
    >>> import os
    >>> d = os.path.join(DATA, "nc_landsat7_raleigh")
    >>> stack = MultiRasterSource([
    ...     RasterioSource(os.path.join(d, "lsat7_2000_stack.tif")),
    ...     RasterioSource(os.path.join(d, "landclass96_strata.tif")),
    ... ])
    >>> stack.num_channels, stack.shape, stack.dtype
    (7, (443, 489), dtype('float32'))
    """

    def __init__(
        self,
        raster_sources: Sequence[RasterSource],
        *,
        primary_source_idx: int = 0,
        channel_order: Sequence[int] | None = None,
        resampling: str = "nearest",
        raster_transformers: Sequence[RasterTransformer] = (),
    ) -> None:
        if not raster_sources:
            raise ConfigError(
                f"MultiRasterSource needs at least one raster source, got {raster_sources!r}. "
                "Give a list of RasterSources, e.g. [RasterioSource(path), ...]."
            )
        if not 0 <= primary_source_idx < len(raster_sources):
            raise ConfigError(
                f"primary_source_idx {primary_source_idx} is not an index of the "
                f"{len(raster_sources)} sources; give an index in 0..{len(raster_sources) - 1}."
            )
        series = [repr(s) for s in raster_sources if len(s.chip_prefix) != 1]
        if series:
            raise ConfigError(
                f"MultiRasterSource stacks bands of single dates, but {series} give time "
                "series (time, band, y, x). Stack each date's sources first, then make the "
                "series with TemporalMultiRasterSource."
            )
        primary = raster_sources[primary_source_idx]
        self.primary_source_idx = primary_source_idx
        self.resampling = resampling
        self.grid = primary.grid
        self.sources = [
            align_to(s, self.grid, resampling=resampling, what=f"Source {i}")
            for i, s in enumerate(raster_sources)
        ]
        self.label = f"stack of {len(self.sources)} sources"
        self._dtype = np.result_type(*(s.dtype for s in self.sources))
        total = sum(s.num_channels for s in self.sources)
        self.channels = resolve_channels(channel_order, total, label=self.label)
        others = [s for i, s in enumerate(raster_sources) if i != primary_source_idx]
        self.nodata = stack_nodata(self._dtype, [primary, *others])
        self.raster_transformers = checked_transformers(
            raster_transformers, len(self.channels), label=self.label
        )
        chunks = primary.data.chunks
        self._chunks = (chunks[-2], chunks[-1]) if chunks else self.grid.shape

    @property
    def _raw_dtype(self) -> np.dtype:
        return np.dtype(self._dtype)

    def _read_inside(self, window: Window) -> np.ma.MaskedArray:
        return read_all(self.sources, window, self._dtype, np.concatenate)[self.channels]

    def _lazy_data(self) -> xr.DataArray:
        return self._lazy_reads(
            self._chunks, name="stack", band_numbers=[c + 1 for c in self.channels]
        )

    def on_grid(self, grid: Grid, *, resampling: str | None = None) -> MultiRasterSource:
        """The same stack, bands and transformers read on ``grid``: each source aligned to it."""
        resampling = resampling or self.resampling
        sources = list(self.sources)
        p = self.primary_source_idx  # the others are aligned to it as the stack is made
        sources[p] = align_to(sources[p], grid, resampling=resampling, what=f"Source {p}")
        return MultiRasterSource(
            sources,
            primary_source_idx=self.primary_source_idx,
            channel_order=self.channels,
            resampling=resampling,
            raster_transformers=self.raster_transformers,
        )

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            [tokenize(s) for s in self.sources],
            self.channels,
            self.grid,
            [repr(t) for t in self.raster_transformers],
        )

    def __repr__(self) -> str:
        return f"MultiRasterSource({[repr(s) for s in self.sources]}, bands={self.num_channels})"
