"""The geoxr exception tree.

Every error geoxr raises on bad input derives from :class:`GeoxrError` and from
the builtin exception that fits, so ``except ValueError`` keeps working. Messages
name the input, say what was expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AOIError",
    "BandCountError",
    "BundleError",
    "CRSMismatchError",
    "ClassConfigError",
    "ConfigError",
    "EmptyBandError",
    "GeoxrError",
    "GeoxrWarning",
    "IncompleteOutputError",
    "LabelsError",
    "NoGeoreferenceError",
    "OutputPathError",
    "RasterReadError",
    "StacAssetError",
    "VectorReadError",
    "WindowError",
]


class GeoxrError(Exception):
    """Base class of every error geoxr raises on bad input."""


class NoGeoreferenceError(GeoxrError, ValueError):
    """A raster or vector has no CRS or no usable affine transform."""


class RasterReadError(GeoxrError, OSError):
    """A raster could not be opened or read through GDAL."""


class VectorReadError(GeoxrError, OSError):
    """A vector file could not be opened or read through OGR."""


class WindowError(GeoxrError, ValueError):
    """A window, bbox or chip size does not fit the scene."""


class AOIError(GeoxrError, ValueError):
    """An area of interest is empty, not polygonal or outside the scene."""


class CRSMismatchError(GeoxrError, ValueError):
    """Two inputs that must share a grid or CRS do not."""


class BandCountError(GeoxrError, ValueError):
    """Inputs that must have the same bands do not (a model and its chips, the dates of a time series)."""


class EmptyBandError(GeoxrError, ValueError):
    """A band has no valid pixel where one is needed (e.g. to compute its statistics)."""


class StacAssetError(GeoxrError, KeyError):
    """A STAC item lacks an asset that was asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ClassConfigError(GeoxrError, ValueError):
    """Class names, colours or ids are inconsistent."""


class ConfigError(GeoxrError, ValueError):
    """An argument or environment variable holds a value geoxr cannot use."""


class BundleError(GeoxrError, ValueError):
    """A model bundle is malformed, unsafe or does not match its model."""


class IncompleteOutputError(GeoxrError, ValueError):
    """An output store was not finished (an interrupted run), or holds another job."""


class OutputPathError(GeoxrError, ValueError):
    """An output path has a format geoxr does not write, or a directory or file in the way."""


class LabelsError(GeoxrError, ValueError):
    """Labels lack the scores or class ids asked of them, or have the wrong shape."""


class GeoxrWarning(UserWarning):
    """geoxr changed or dropped part of the input; the message says what and how much."""
