"""The learner's configuration: one serialisable dataclass, versioned for model bundles."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from geoxr.errors import BandCountError, BundleError, ConfigError
from geoxr.grid import non_integers
from geoxr.label import ClassConfig
from geoxr.read import BandStats

if TYPE_CHECKING:
    from geoxr.read import RasterSource

__all__ = ["SCHEMA_VERSION", "ModelConfig", "SemanticSegmentationLearnerConfig", "SolverConfig"]

Optimizer = Literal["adamw", "adam", "sgd"]
LRSchedule = Literal["constant", "cosine", "onecycle", "step"]
_OPTIMIZERS = get_args(Optimizer)
_LR_SCHEDULES = get_args(LRSchedule)

SCHEMA_VERSION = 1


def _plain(value: Any) -> Any:
    """``value`` with numpy numbers as Python's, at any depth of dicts, lists and tuples.

    Examples
    --------
    >>> import numpy as np
    >>> _plain({"a": (np.float32(0.5), [np.int64(3)])})
    {'a': [0.5, [3]]}
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class ModelConfig:
    """Which built-in model to build.

    ``'unet'`` (:class:`~geoxr.learn.UNet`) takes ``(N, C, H, W)`` chips;
    ``'temporal_unet'`` (:class:`~geoxr.learn.TemporalUNet`) takes time series
    ``(N, T, C, H, W)`` and pools dates with ``temporal_pooling``. ``'custom'``
    records that the user passed their own ``nn.Module``.
    """

    name: Literal["unet", "temporal_unet", "custom"] = "unet"
    width: int = 32
    depth: int = 3
    temporal_pooling: Literal["attention", "mean", "max"] = "attention"

    def __post_init__(self) -> None:
        for name in ("width", "depth"):
            value = getattr(self, name)
            if non_integers([value]) or value < 1:
                raise ConfigError(f"ModelConfig {name} must be an int >= 1, got {value!r}.")

    def check_chips_of(self, source: RasterSource, *, label: str) -> None:
        """Raise a ConfigError if ``source``'s chips are not what this model takes.

        Time series ``(time, band, y, x)`` for ``'temporal_unet'``, single dates
        ``(band, y, x)`` for ``'unet'``; a custom model is the user's to know.
        ``label`` names the source in the message.
        """
        if self.name == "custom":
            return
        series = len(source.chip_prefix) == 2
        if series and self.name != "temporal_unet":
            raise ConfigError(
                f"{label} gives time series (time, band, y, x), but model {self.name!r} takes "
                "single-date chips (band, y, x). Use ModelConfig(name='temporal_unet'), or "
                "read one date."
            )
        if not series and self.name == "temporal_unet":
            raise ConfigError(
                f"{label} gives single-date chips (band, y, x), but model 'temporal_unet' "
                "takes time series (time, band, y, x). Stack the dates with "
                "TemporalMultiRasterSource, or use ModelConfig(name='unet')."
            )


@dataclass(frozen=True)
class SolverConfig:
    """Optimisation settings.

    Parameters
    ----------
    lr : float
        Peak learning rate.
    num_epochs : int
        Epochs the LR schedule spans (``train()`` runs this many by default).
    batch_size : int
        Chips per batch.
    optimizer : {'adamw', 'adam', 'sgd'}
        Optimizer; ``sgd`` uses ``momentum``.
    weight_decay : float
        Weight decay of the optimizer.
    momentum : float
        Momentum of ``sgd``.
    lr_schedule : {'constant', 'cosine', 'onecycle', 'step'}
        Per-step schedule over ``num_epochs``; ``step`` multiplies the LR by
        ``gamma`` every ``step_epochs``.
    step_epochs : int
        Epochs between the ``step`` schedule's LR drops.
    gamma : float
        Factor of each ``step`` LR drop.
    class_weights : tuple of float, optional
        Loss weight per class (one per class of the class config), each >= 0.
        Batches whose labelled pixels all weigh 0 are skipped.
    num_workers : int
        DataLoader workers.
    """

    lr: float = 1e-3
    num_epochs: int = 10
    batch_size: int = 8
    optimizer: Optimizer = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    lr_schedule: LRSchedule = "constant"
    step_epochs: int = 5
    gamma: float = 0.1
    class_weights: tuple[float, ...] | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.class_weights is not None:  # floats, as the loss takes them (JSON: a list)
            object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))

    def check(self) -> None:
        """Raise :class:`~geoxr.ConfigError` if these settings cannot train a model.

        Learners call it before they build an optimizer or a loss. Loading a bundle does
        not: its solver settings play no part in inference.

        Examples
        --------
        >>> SolverConfig(optimizer="SGD").check()
        Traceback (most recent call last):
        ...
        geoxr.errors.ConfigError: optimizer 'SGD' is not one of ('adamw', 'adam', 'sgd'); ...
        """
        choices = {"optimizer": _OPTIMIZERS, "lr_schedule": _LR_SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} {getattr(self, name)!r} is not one of {allowed}; a typo would "
                    "run AdamW with a constant LR. Give one of these names."
                )
        if self.batch_size < 1 or self.num_epochs < 0:
            raise ConfigError(
                f"batch_size must be >= 1 and num_epochs >= 0, got {self.batch_size} and "
                f"{self.num_epochs}."
            )
        if self.num_workers < 0 or self.step_epochs < 1:
            raise ConfigError(
                f"num_workers must be >= 0 and step_epochs >= 1, got {self.num_workers} and "
                f"{self.step_epochs}."
            )
        numbers = {
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "gamma": self.gamma,
        }
        negative = {k: v for k, v in numbers.items() if not (math.isfinite(v) and v >= 0)}
        if negative or self.gamma == 0:
            raise ConfigError(
                f"lr, weight_decay, momentum and gamma must be finite and >= 0 (gamma > 0), "
                f"got {negative or {'gamma': self.gamma}}."
            )
        weights = self.class_weights
        if weights is not None and (
            not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights)
        ):
            raise ConfigError(
                f"class_weights {list(weights)} must be finite and >= 0, some above 0."
            )


@dataclass(frozen=True)
class SemanticSegmentationLearnerConfig:
    """Everything needed to rebuild a trained model: classes, bands, model, solver, stats.

    Examples
    --------
    >>> cfg = SemanticSegmentationLearnerConfig(
    ...     class_config=ClassConfig(["bg", "building"]), in_channels=3,
    ...     model=ModelConfig(width=8, depth=2))
    >>> SemanticSegmentationLearnerConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    class_config: ClassConfig
    in_channels: int
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    norm_stats: BandStats | None = None

    def __post_init__(self) -> None:
        n = self.in_channels
        if non_integers([n]) or n < 1:
            raise ConfigError(f"in_channels must be an int >= 1, got {n!r}.")
        # The stats' band count is the source's, which a dataset's transform may change
        # before the model sees the chips: checked where chips are known.
        stats = self.norm_stats
        if stats is not None and not all(math.isfinite(v) and v > 0 for v in stats.stds):
            raise ConfigError(
                f"norm_stats stds must be finite and > 0, got {stats.stds}: a band would be "
                "divided by 0. Floor them (compute_band_stats(..., min_std=...))."
            )

    def check_source(self, source: RasterSource, *, label: str) -> None:
        """Raise if the model cannot take ``source``'s chips: their dates or band count.

        ``label`` names the source in the message.

        Raises
        ------
        ConfigError
            A time series for a single-date model, or the reverse.
        BandCountError
            Other bands than ``in_channels``.
        """
        self.model.check_chips_of(source, label=label)
        bands = source.num_channels
        if bands != self.in_channels:
            raise BandCountError(
                f"{label} has {bands} bands, the model takes {self.in_channels} bands but "
                "only those (in_channels): select the training bands with "
                "channel_order=[...], or set in_channels."
            )

    def replace(self, **changes: Any) -> SemanticSegmentationLearnerConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the schema version (numpy numbers as Python's)."""
        return _plain(
            {
                "schema_version": SCHEMA_VERSION,
                "task": "semantic_segmentation",
                "class_config": self.class_config.to_dict(),
                "in_channels": self.in_channels,
                "model": asdict(self.model),
                "solver": asdict(self.solver),
                "norm_stats": None if self.norm_stats is None else self.norm_stats.to_dict(),
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SemanticSegmentationLearnerConfig:
        """Inverse of :meth:`to_dict`; rejects unknown schema versions and tasks."""
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            newer = (
                isinstance(version, int)
                and not isinstance(version, bool)
                and version > SCHEMA_VERSION
            )
            fix = "Upgrade geoxr" if newer else "Re-export the bundle with this geoxr version"
            raise BundleError(
                f"Config schema version {version!r} is not supported (this geoxr reads "
                f"version {SCHEMA_VERSION}). {fix}."
            )
        if d.get("task") != "semantic_segmentation":
            raise BundleError(f"Config is for task {d.get('task')!r}, not semantic_segmentation.")
        try:
            solver = dict(d["solver"])
            if solver.get("class_weights") is not None:
                solver["class_weights"] = tuple(solver["class_weights"])
            stats = d.get("norm_stats")
            return cls(
                class_config=ClassConfig.from_dict(d["class_config"]),
                in_channels=d["in_channels"],  # checked, not truncated
                model=ModelConfig(**d["model"]),
                solver=SolverConfig(**solver),
                norm_stats=None if stats is None else BandStats.from_dict(stats),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"Malformed learner config: {exc}") from exc
