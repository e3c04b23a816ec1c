"""Raster Vision's raster transformers, each identical on a chip and on a lazy DataArray.

Every transformer here works pixel by pixel, so applying it to a chip and to the
block of ``.data`` that holds the chip gives the same values. Statistics that a
transformer needs (means, minima) are computed once for the whole raster, as a
dask reduction, never per chip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import numpy.typing as npt
import xarray as xr

from geoxr.errors import BandCountError, ClassConfigError, EmptyBandError
from geoxr.read.stats import BandStats, compute_band_stats, valid_pixels, with_band_axis
from geoxr.read.transformers._base import RasterTransformer

__all__ = [
    "CastTransformer",
    "MinMaxTransformer",
    "NanTransformer",
    "RGBClassTransformer",
    "ReclassTransformer",
    "StatsTransformer",
]


class CastTransformer(RasterTransformer):
    """Cast chips to another dtype; masked pixels stay masked.

    Examples
    --------
    >>> chip = np.ma.MaskedArray(np.array([[[1.7, 300.0]]]), mask=[[[False, True]]])
    >>> out = CastTransformer("uint8").transform(chip)
    >>> out.dtype, out.filled(0).tolist(), out.mask.tolist()
    (dtype('uint8'), [[[1, 0]]], [[[False, True]]])
    """

    def __init__(self, to_dtype: npt.DTypeLike) -> None:
        self.to_dtype = np.dtype(to_dtype)

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Cast the values; masked values become 0 first so they cannot overflow."""
        values = chip.filled(0).astype(self.to_dtype)
        return np.ma.MaskedArray(values, mask=np.ma.getmaskarray(chip))

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """The target dtype."""
        return self.to_dtype


def _check_per_band(transformer: RasterTransformer, given: int, bands: int, label: str) -> None:
    """Raise if ``transformer`` holds values for ``given`` bands where it gets ``bands``."""
    if given != bands:
        raise BandCountError(
            f"{type(transformer).__name__} has values for {given} bands, but {label!r} gives it "
            f"{bands}. Compute them on the same bands (channel_order) as the source reads."
        )


class StatsTransformer(RasterTransformer):
    """Standardise with per-band mean and std, clip at ``max_stds`` and scale to uint8.

    ``value = (clip((x - mean) / std, -max_stds, max_stds) + max_stds) / (2 * max_stds) * 255``,
    as Raster Vision's ``StatsTransformer``. Statistics come from the whole raster
    (:meth:`from_data`: one nodata-aware dask reduction) and round-trip through JSON.

    Examples
    --------
    >>> t = StatsTransformer(means=(10.0,), stds=(2.0,))
    >>> chip = np.ma.MaskedArray(np.array([[[4.0, 10.0, 16.0]]]), mask=[[[False, False, True]]])
    >>> t.transform(chip).tolist()
    [[[0, 128, None]]]
    >>> StatsTransformer.from_dict(t.to_dict()).means
    (10.0,)
    """

    def __init__(
        self, means: tuple[float, ...], stds: tuple[float, ...], *, max_stds: float = 3.0
    ) -> None:
        self.stats = BandStats(tuple(float(m) for m in means), tuple(float(s) for s in stds))
        self.max_stds = float(max_stds)

    @property
    def means(self) -> tuple[float, ...]:
        """Per-band means."""
        return self.stats.means

    @property
    def stds(self) -> tuple[float, ...]:
        """Per-band standard deviations."""
        return self.stats.stds

    @classmethod
    def from_data(
        cls, data: xr.DataArray, *, nodata: float | None = None, max_stds: float = 3.0
    ) -> StatsTransformer:
        """Statistics of a whole raster (e.g. ``source.data``), computed as one dask reduction."""
        stats = compute_band_stats(data, nodata=nodata)
        return cls(stats.means, stats.stds, max_stds=max_stds)

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Standardise, clip and scale to 0..255."""
        z = self.stats.normalize(chip.filled(0))
        z = np.clip(z, -self.max_stds, self.max_stds)
        scaled = np.round((z + self.max_stds) / (2 * self.max_stds) * 255)
        return np.ma.MaskedArray(scaled.astype(np.uint8), mask=np.ma.getmaskarray(chip))

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """Always uint8."""
        return np.dtype(np.uint8)

    def check_bands(self, in_bands: int, *, label: str) -> None:
        """Statistics for each band, no more, no fewer."""
        _check_per_band(self, len(self.stats.means), in_bands, label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.stats.to_dict(), "max_stds": self.max_stds}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StatsTransformer:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["means"]), tuple(d["stds"]), max_stds=d.get("max_stds", 3.0))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the statistics as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StatsTransformer:
        """Read statistics written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


class MinMaxTransformer(RasterTransformer):
    """Scale each band linearly from ``[min, max]`` to ``0..255`` (uint8).

    Unlike Raster Vision's per-chip version, minima and maxima are those of the
    whole raster (:meth:`from_data`), so a chip and the lazy array agree.

    Examples
    --------
    >>> t = MinMaxTransformer(mins=(0.0,), maxs=(10.0,))
    >>> t.transform(np.ma.MaskedArray(np.array([[[0.0, 5.0, 12.0]]]))).tolist()
    [[[0, 128, 255]]]
    """

    def __init__(self, mins: tuple[float, ...], maxs: tuple[float, ...]) -> None:
        self.mins = tuple(float(v) for v in mins)
        self.maxs = tuple(float(v) for v in maxs)
        if len(self.mins) != len(self.maxs):
            raise BandCountError(
                f"MinMaxTransformer got {len(self.mins)} minimums and {len(self.maxs)} "
                "maximums; give one of each per band."
            )

    @classmethod
    def from_data(cls, data: xr.DataArray, *, nodata: float | None = None) -> MinMaxTransformer:
        """Per-band minimum and maximum of valid pixels, as one dask reduction.

        Valid: not NaN, not ``data.rio.nodata`` and not ``nodata``.

        Raises
        ------
        EmptyBandError
            If a band has no valid pixel (its range is undefined).
        """
        data = with_band_axis(data)
        valid = valid_pixels(data, nodata)
        dims = [d for d in data.dims if d != "band"]
        values = data.astype(np.float64)
        # Invalid pixels as +-inf, not NaN: a block with no valid pixel (nodata at the
        # scene's edge) would warn "All-NaN slice" from numpy's nanmin.
        lows = values.where(valid, np.inf).min(dims, skipna=False)
        highs = values.where(valid, -np.inf).max(dims, skipna=False)
        mins, maxs, any_valid = (
            np.asarray(m) for m in dask.compute(lows.data, highs.data, valid.any(dims).data)
        )
        empty = np.flatnonzero(~any_valid)
        if empty.size:
            raise EmptyBandError(
                f"Band(s) {empty.tolist()} (0-based) of DataArray {data.name!r} have no valid "
                "pixel, so their range is undefined. Check the nodata value and the bands, or "
                "give mins and maxs yourself."
            )
        return cls(tuple(mins.tolist()), tuple(maxs.tolist()))

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Scale and clip to 0..255."""
        shape = (-1,) + (1,) * 2
        lo = np.asarray(self.mins).reshape(shape)
        span = np.maximum(np.asarray(self.maxs).reshape(shape) - lo, 1e-12)
        scaled = np.clip(np.round((chip.filled(0) - lo) / span * 255), 0, 255)
        return np.ma.MaskedArray(scaled.astype(np.uint8), mask=np.ma.getmaskarray(chip))

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """Always uint8."""
        return np.dtype(np.uint8)

    def check_bands(self, in_bands: int, *, label: str) -> None:
        """A range for each band, no more, no fewer (one was broadcast to all)."""
        _check_per_band(self, len(self.mins), in_bands, label)


class NanTransformer(RasterTransformer):
    """Replace NaN with ``to_value``; those pixels become valid data.

    Examples
    --------
    >>> chip = np.ma.masked_invalid(np.array([[[1.0, np.nan]]]))
    >>> out = NanTransformer(0.0).transform(chip)
    >>> out.tolist(), bool(out.mask.any())
    ([[[1.0, 0.0]]], False)
    """

    def __init__(self, to_value: float = 0.0) -> None:
        self.to_value = float(to_value)

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Fill NaN and unmask it; other masked pixels stay masked."""
        values = np.ma.getdata(chip).copy()
        is_nan = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, bool)
        values[is_nan] = self.to_value
        return np.ma.MaskedArray(values, mask=np.ma.getmaskarray(chip) & ~is_nan)


class ReclassTransformer(RasterTransformer):
    """Map values to new values (e.g. label codes to class ids); other values are kept.

    Examples
    --------
    >>> ReclassTransformer({1: 0, 2: 0, 7: 1}).transform(np.ma.MaskedArray(np.array([[[1, 2, 3, 7]]]))).tolist()
    [[[0, 0, 3, 1]]]
    """

    def __init__(self, mapping: Mapping[int, int]) -> None:
        self.mapping = {int(k): int(v) for k, v in mapping.items()}

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """Apply the mapping pixel by pixel."""
        values = np.ma.getdata(chip)
        out = values.copy()
        for old, new in self.mapping.items():
            out[values == old] = new
        return np.ma.MaskedArray(out, mask=np.ma.getmaskarray(chip))


class RGBClassTransformer(RasterTransformer):
    """Turn an RGB label raster into one band of class ids, by the class config's colours.

    Colours that no class has, and pixels whose every band is masked (nodata), become
    the null class (valid labels that mean "ignore"). With nodata 0, red ``(255, 0, 0)``
    is red: a pixel is nodata only where all its bands are, as in GDAL's dataset mask.
    A band masked alone (a stack of one file per band, which cover different areas)
    counts as 0 there.

    Examples
    --------
    >>> from geoxr.label.class_config import ClassConfig
    >>> t = RGBClassTransformer(ClassConfig(["bg", "building"], colors=["#000000", "#ff0000"]))
    >>> rgb = np.ma.MaskedArray(np.array([[[0, 255, 9]], [[0, 0, 9]], [[0, 0, 9]]], np.uint8))
    >>> t.transform(rgb).tolist()
    [[[0, 1, 2]]]
    """

    def __init__(self, class_config: Any) -> None:
        colors = [tuple(c) for c in class_config.colors]
        if len(set(colors)) != len(colors):
            raise ClassConfigError(
                f"RGBClassTransformer needs one colour per class, but classes share colours: "
                f"{dict(zip(class_config.names, colors, strict=True))}."
            )
        self.colors = colors
        self.null_class_id = class_config.ignore_class_id

    def transform(self, chip: np.ma.MaskedArray) -> np.ma.MaskedArray:
        """``(3, h, w)`` RGB to ``(1, h, w)`` uint8 class ids."""
        if chip.shape[0] != 3:
            raise ClassConfigError(
                f"RGBClassTransformer needs 3 bands (RGB), got {chip.shape[0]}."
            )
        rgb = np.ma.filled(chip, 0).astype(np.int64)  # a band masked alone: 0
        code = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
        ids = np.full(code.shape, self.null_class_id, np.uint8)
        for class_id, (r, g, b) in enumerate(self.colors):
            ids[code == ((r << 16) | (g << 8) | b)] = class_id
        ids[np.asarray(np.ma.getmaskarray(chip).all(axis=0))] = self.null_class_id
        return np.ma.MaskedArray(ids[None], mask=np.zeros((1, *ids.shape), bool))

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """Always uint8."""
        return np.dtype(np.uint8)

    def out_bands(self, in_bands: int) -> int:
        """One band of class ids."""
        return 1

    def check_bands(self, in_bands: int, *, label: str) -> None:
        """Three bands: red, green, blue."""
        if in_bands != 3:
            raise BandCountError(
                f"RGBClassTransformer needs 3 bands (RGB), but {label!r} gives it {in_bands}. "
                "Select them with channel_order=[r, g, b]."
            )
