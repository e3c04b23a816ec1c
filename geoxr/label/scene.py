"""Scene: a raster, its labels and an area of interest, cross-checked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely

from geoxr.errors import ConfigError, CRSMismatchError
from geoxr.grid import Grid, Window, aoi_geometries, aoi_union
from geoxr.label.class_config import ClassConfig
from geoxr.label.rasterized_source import RasterizedSource
from geoxr.label.sources import SemanticSegmentationLabelSource
from geoxr.read import RasterioSource, RasterSource, VectorSource
from geoxr.read.multi import check_overlap

__all__ = ["Scene", "make_ss_scene"]


@dataclass(frozen=True)
class Scene:
    """A raster source with its labels, label store and area of interest.

    Parameters
    ----------
    id : str
        Scene name.
    raster_source : RasterSource
        The imagery.
    label_source : SemanticSegmentationLabelSource, optional
        Ground truth on the same grid as the imagery.
    label_store : object, optional
        Where predictions for this scene are written.
    aoi_polygons : shapely Polygon, sequence of them, GeoSeries or GeoDataFrame, optional
        Area of interest in the raster's CRS (a GeoSeries or GeoDataFrame is
        reprojected to it); default the whole raster. Kept as a tuple of geometries.

    Raises
    ------
    CRSMismatchError
        If the labels are not on the raster's grid.
    AOIError
        If the AOI is empty, not polygonal or misses the raster.
    """

    id: str
    raster_source: RasterSource
    label_source: SemanticSegmentationLabelSource | None = None
    label_store: Any = None
    aoi_polygons: tuple[shapely.Geometry, ...] | None = None
    aoi: shapely.Geometry | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.label_source is not None and not self.grid.aligned_with(self.label_source.grid):
            raise CRSMismatchError(
                f"Scene {self.id!r}: labels are on grid {self.label_source.grid} but the raster "
                f"is on {self.grid}. Read the labels with target_grid=raster_source.grid "
                "(make_ss_scene does this) so both share one grid."
            )
        aoi = None
        if self.aoi_polygons is not None:
            name = f"The AOI of scene {self.id!r}"
            polygons = aoi_geometries(self.aoi_polygons, name=name, crs=self.grid.crs)
            object.__setattr__(self, "aoi_polygons", polygons)
            aoi = aoi_union(polygons, name=name, grid=self.grid)
        object.__setattr__(self, "aoi", aoi)

    @property
    def grid(self) -> Grid:
        """The raster's grid, shared by labels and predictions."""
        return self.raster_source.grid

    @property
    def extent(self) -> Window:
        """The window covering the whole scene (Raster Vision's ``scene.extent``)."""
        return self.raster_source.extent

    @property
    def class_config(self) -> ClassConfig | None:
        """The label source's class config, if any."""
        return None if self.label_source is None else self.label_source.class_config


def make_ss_scene(
    image_uri: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    class_config: ClassConfig,
    label_raster_uri: str | os.PathLike[str] | None = None,
    label_vector_uri: str | os.PathLike[str] | None = None,
    aoi_uri: str | os.PathLike[str] | None = None,
    scene_id: str | None = None,
    image_raster_source_kw: dict[str, Any] | None = None,
    label_raster_source_kw: dict[str, Any] | None = None,
    class_id_column: str | None = "class_id",
    default_class_id: int | None = None,
    background_class_id: int = 0,
    all_touched: bool = False,
    label_store: Any = None,
    label_vector_default_class_id: int | None = None,
) -> Scene:
    """Build a semantic segmentation :class:`Scene` from file paths.

    Labels come from a label raster (aligned to the image grid, warped through
    GDAL if its grid or CRS differs) or from vector polygons rasterized per
    window. Vector labels and the AOI may be in any CRS; they are reprojected.

    Parameters
    ----------
    image_uri : str or sequence of str
        Image file(s) or URL(s), see :class:`~geoxr.RasterioSource`.
    class_config : ClassConfig
        The classes.
    label_raster_uri, label_vector_uri : str, optional
        Label raster of class ids, or polygons with a class id property. At most one.
    aoi_uri : str, optional
        Vector file of AOI polygons.
    scene_id : str, optional
        Default: the image file's stem.
    image_raster_source_kw, label_raster_source_kw : dict, optional
        Extra arguments for the image and label :class:`~geoxr.RasterioSource`
        (``bbox``, ``channel_order``, ``nodata``, ``raster_transformers``).
    class_id_column, default_class_id, background_class_id, all_touched
        For vector labels, see :class:`~geoxr.RasterizedSource`.
    label_store : object, optional
        Where predictions go.
    label_vector_default_class_id : int, optional
        Raster Vision's name for ``default_class_id``.

    Examples
    --------
    >>> import os
    >>> d = os.path.join(DATA, "spacenet4_atlanta")
    >>> scene = make_ss_scene(
    ...     os.path.join(d, "sn4_atlanta_pan.tif"),
    ...     label_vector_uri=os.path.join(d, "sn4_atlanta_buildings.geojson"),
    ...     class_config=ClassConfig(["background", "building"]),
    ...     default_class_id=1,
    ... )
    >>> scene.id, scene.grid.shape, scene.class_config.names
    ('sn4_atlanta_pan', (900, 900), ('background', 'building', 'null'))
    """
    if label_raster_uri is not None and label_vector_uri is not None:
        raise ConfigError(
            "Give label_raster_uri or label_vector_uri, not both; got "
            f"label_raster_uri={label_raster_uri!r} and label_vector_uri={label_vector_uri!r}. "
            "Drop one of them."
        )
    if label_vector_default_class_id is not None:
        if default_class_id not in (None, label_vector_default_class_id):
            raise ConfigError(
                f"default_class_id={default_class_id!r} and label_vector_default_class_id="
                f"{label_vector_default_class_id!r} (Raster Vision's name for it) disagree; "
                "give one of them."
            )
        default_class_id = label_vector_default_class_id
    image = RasterioSource(image_uri, **(image_raster_source_kw or {}))
    label_source = None
    if label_raster_uri is not None:
        kw = dict(label_raster_source_kw or {})
        labels = RasterioSource(label_raster_uri, **kw)
        if not labels.grid.aligned_with(image.grid):
            # Labels of another place would all read as the null class: nothing to learn.
            whole = labels.uncropped_grid
            check_overlap(
                whole.bounds, whole.crs, image.uncropped_grid,
                what=f"Label raster {label_raster_uri!r}", onto="the image",
            )  # fmt: skip
            # Read onto the image's grid, already cropped to its bbox: a bbox of the
            # label raster's own has no part in that.
            kw.pop("bbox", None)
            labels = RasterioSource(label_raster_uri, target_grid=image.grid, **kw)
        label_source = SemanticSegmentationLabelSource(labels, class_config)
    elif label_vector_uri is not None:
        rasterized = RasterizedSource(
            VectorSource(label_vector_uri),
            grid=image.grid,
            class_id_column=class_id_column,
            default_class_id=default_class_id,
            background_class_id=background_class_id,
            all_touched=all_touched,
        )
        # Polygons of another place (another CRS declared, x and y swapped) would all
        # read as background: checked against the whole image (a crop may miss them); a
        # file without polygons (a tile with no buildings) is all background.
        if rasterized.features_bounds is not None:
            check_overlap(
                rasterized.features_bounds, image.crs, image.uncropped_grid,
                what=f"The polygons of {str(label_vector_uri)!r}", onto="the image",
            )  # fmt: skip
        label_source = SemanticSegmentationLabelSource(rasterized, class_config)
    aoi = None
    if aoi_uri is not None:
        aoi = tuple(VectorSource(aoi_uri).get_geodataframe(crs=image.crs).geometry)
    first = image_uri if isinstance(image_uri, str | os.PathLike) else image_uri[0]
    name = scene_id or os.path.splitext(os.path.basename(os.fspath(first)))[0]
    return Scene(name, image, label_source, label_store, aoi)
