"""SemanticSegmentationLabelStore: save labels to Zarr or COG (plus vectors) and read them back."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from geoxr.errors import OutputPathError
from geoxr.label import SemanticSegmentationLabels
from geoxr.store._paths import check_output_path
from geoxr.store.cog import read_cog_labels, write_cog_labels
from geoxr.store.vector import check_vector_path, vector_class_ids, write_vector_labels
from geoxr.store.zarr import read_zarr_labels, write_zarr_labels

__all__ = ["SemanticSegmentationLabelStore", "VectorOutput"]


@dataclass(frozen=True)
class VectorOutput:
    """Polygonized class regions to write beside the raster output.

    Parameters
    ----------
    uri : str
        ``.geojson``, ``.gpkg`` or ``.parquet`` path.
    class_ids : tuple of int or str, optional
        Classes to polygonize, by id or name; default all but null.
    simplify : float
        Simplification tolerance in map units.
    min_area : float
        Smallest polygon kept, in square map units.
    """

    uri: str
    class_ids: tuple[int | str, ...] | None = None
    simplify: float = 0.0
    min_area: float = 0.0


class SemanticSegmentationLabelStore:
    """Where a scene's predictions go: a Zarr v3 store or a COG, optionally with vectors.

    Parameters
    ----------
    uri : str or path
        ``*.zarr`` (Zarr v3: scores and class ids, resumable) or ``*.tif`` (COG of
        class ids; scores beside it as ``*-scores.tif`` if ``write_scores``).
    write_scores : bool
        Also store the class scores.
    vector_output : VectorOutput, optional
        Also write polygons of the class regions.
    resume : bool
        For Zarr: continue an interrupted write of the same job.
    progress : bool
        Show progress bars.
    """

    def __init__(
        self,
        uri: str | os.PathLike[str],
        *,
        write_scores: bool = True,
        vector_output: VectorOutput | None = None,
        resume: bool = True,
        progress: bool = True,
    ) -> None:
        self.uri = Path(uri)
        suffix = self.uri.suffix.lower()
        if suffix not in (".zarr", ".tif", ".tiff"):
            raise OutputPathError(
                f"Label store {str(uri)!r}: expected a '.zarr' or '.tif' path, to choose "
                "between a Zarr store and a COG. Give the path one of those suffixes."
            )
        self.format: Literal["zarr", "cog"] = "zarr" if suffix == ".zarr" else "cog"
        self.write_scores = write_scores
        self.vector_output = vector_output
        self.resume = resume
        self.progress = progress

    @property
    def scores_uri(self) -> Path | None:
        """Where a COG store puts scores."""
        if self.format != "cog" or not self.write_scores:
            return None
        return self._scores_sidecar

    @property
    def _scores_sidecar(self) -> Path:
        return self.uri.with_name(f"{self.uri.stem}-scores{self.uri.suffix}")

    def save(self, labels: SemanticSegmentationLabels) -> Path:
        """Write the labels (computing them block by block); returns the raster output path.

        Raises
        ------
        OutputPathError
            Before any compute, if an output path cannot be written, a COG's
            ``-scores.tif`` included (see :func:`~geoxr.store.vector.check_vector_path`).
        ClassConfigError, ConfigError
            Before any compute, if the vector output's classes or options are not
            ones :func:`~geoxr.store.vector.vector_class_ids` takes.
        """
        check_output_path(self.uri, what="Label store", directory=self.format == "zarr")
        if self.format == "cog":  # written, or replaced by nothing (see below)
            check_output_path(self._scores_sidecar, what="Label store scores COG")
        if self.vector_output is not None:
            v = self.vector_output
            check_vector_path(v.uri, labels.grid.crs)
            vector_class_ids(labels, v.class_ids, simplify=v.simplify, min_area=v.min_area)
        if self.format == "zarr":
            write_zarr_labels(
                labels,
                self.uri,
                scores=self.write_scores,
                resume=self.resume,
                progress=self.progress,
            )
        else:
            scores_uri = self.scores_uri if labels.scores is not None else None
            write_cog_labels(labels, self.uri, scores_path=scores_uri, progress=self.progress)
            if scores_uri is None:  # scores of an earlier save would pass for these labels'
                # Only now: had the write failed, the earlier class ids keep their scores.
                self._scores_sidecar.unlink(missing_ok=True)
        if self.vector_output is not None:
            v = self.vector_output
            # The raster is the new one now: an earlier save's polygons would pass for
            # its own, should this process die before the new ones are in place.
            Path(v.uri).unlink(missing_ok=True)
            write_vector_labels(
                self.get_labels(),
                v.uri,
                class_ids=v.class_ids,
                simplify=v.simplify,
                min_area=v.min_area,
            )
        return self.uri

    def get_labels(self) -> SemanticSegmentationLabels:
        """Read the stored labels back, lazily."""
        if self.format == "zarr":
            return read_zarr_labels(self.uri)
        scores_uri = self.scores_uri
        if scores_uri is not None and not scores_uri.exists():
            scores_uri = None
        return read_cog_labels(self.uri, scores_path=scores_uri)

    def __repr__(self) -> str:
        return f"SemanticSegmentationLabelStore({str(self.uri)!r}, format={self.format!r})"
