"""SemanticSegmentationLearner: train, validate, checkpoint, bundle and predict."""

from __future__ import annotations

import json
import math
import os
import pickle
import time
import warnings
from collections.abc import Iterator, Sized
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from geoxr._devices import check_device
from geoxr._files import write_atomically
from geoxr.errors import (
    BundleError,
    ClassConfigError,
    ConfigError,
    GeoxrWarning,
    LabelsError,
)
from geoxr.grid import Window
from geoxr.learn.bundle import read_bundle, read_bundle_header, write_bundle
from geoxr.learn.config import SemanticSegmentationLearnerConfig
from geoxr.learn.metrics import confusion_matrix, segmentation_metrics, without_nan
from geoxr.learn.models import TemporalUNet, UNet
from geoxr.read import BandStats
from geoxr.sample import GeoDataset

__all__ = ["SemanticSegmentationLearner"]

CHECKPOINT_NAME = "checkpoint.pt"
LAST_MODEL_NAME = "last-model.pth"
HISTORY_NAME = "history.json"
BUNDLE_NAME = "model-bundle.zip"


def build_model(cfg: SemanticSegmentationLearnerConfig) -> nn.Module:
    """The built-in model a config describes."""
    num_classes = len(cfg.class_config.ensure_null_class())
    m = cfg.model
    if m.name == "unet":
        return UNet(cfg.in_channels, num_classes, width=m.width, depth=m.depth)
    if m.name == "temporal_unet":
        return TemporalUNet(
            cfg.in_channels, num_classes, width=m.width, depth=m.depth, pooling=m.temporal_pooling
        )
    raise BundleError(
        f"Config names model {m.name!r}, which geoxr cannot build; pass the module with "
        "model=... (its weights are checked against it)."
    )


def _constant_lr(epoch: int) -> float:
    """The constant schedule's factor: a module-level function, so a learner pickles."""
    return 1.0


def _scene_datasets(ds: Dataset) -> list[GeoDataset]:
    """The datasets with a scene that ``ds`` draws from, at any depth.

    ``ds`` itself, or those inside a ``Subset`` or a ``ConcatDataset`` (several scenes).
    """
    if getattr(ds, "scene", None) is not None:
        return [ds]  # type: ignore[list-item]
    if isinstance(ds, Subset):
        return _scene_datasets(ds.dataset)
    if isinstance(ds, ConcatDataset):
        return [inner for part in ds.datasets for inner in _scene_datasets(part)]
    return []


def _norm_stats_of(ds: Dataset, name: str) -> BandStats | None:
    """The band statistics ``ds`` normalises with (``None``: raw values, or none known).

    Raises
    ------
    ConfigError
        If its scenes' datasets normalise differently: a bundle keeps one set.
    """
    found: list[BandStats | None] = []
    for inner in _scene_datasets(ds):
        stats = getattr(inner, "normalize", None)  # a dataset of the user's own may have none
        if stats not in found:
            found.append(stats)
    if len(found) > 1:
        raise ConfigError(
            f"{name} draws from datasets normalised in different ways ({found}); the model "
            "bundle, and so predict_scene, keeps one. Build them all with the same "
            "normalize=..., or set the config's norm_stats."
        )
    return found[0] if found else None


def _check_labelled(ds: Dataset, name: str) -> None:
    """Refuse to train or validate on a scene without labels (its masks are NaN)."""
    for inner in _scene_datasets(ds):
        if inner.scene.label_source is None:
            raise LabelsError(
                f"{name}'s scene {inner.scene.id!r} has no labels, so nothing to learn or "
                "score against. Give make_ss_scene label_raster_uri=... or "
                "label_vector_uri=... (or Scene a label_source)."
            )


def _check_dataset(ds: Dataset, cfg: SemanticSegmentationLearnerConfig, name: str) -> None:
    """Refuse a dataset of other classes or bands than ``cfg``; warn of other stats.

    Each scene's dataset inside a ``Subset`` or ``ConcatDataset`` is checked; a
    dataset of the user's own without a scene is not.
    """
    for inner in _scene_datasets(ds):
        _check_scene_dataset(inner, cfg, name)


def _check_chips(ds: GeoDataset, cfg: SemanticSegmentationLearnerConfig, name: str) -> None:
    """Refuse a scene's dataset whose chips the model cannot take (bands, dates)."""
    if getattr(ds, "transform", None) is not None:  # chips are what it makes of them
        return
    cfg.check_source(ds.scene.raster_source, label=f"{name}'s scene {ds.scene.id!r}")


def _check_scene_dataset(
    ds: GeoDataset, cfg: SemanticSegmentationLearnerConfig, name: str
) -> None:
    scene = ds.scene
    # Label sources add a null class to a config without one, as the learner's model does.
    ids, wanted = scene.label_source, cfg.class_config.ensure_null_class()
    if ids is not None and not ids.class_config.same_classes(wanted):
        raise ClassConfigError(
            f"{name}'s scene {scene.id!r} has the classes {list(ids.class_config.names)}, the "
            f"learner {list(wanted.names)}: its ids would train other classes. Build both "
            "with the same ClassConfig."
        )
    _check_chips(ds, cfg, name)
    normalize = getattr(ds, "normalize", None)
    if cfg.norm_stats is not None and normalize != cfg.norm_stats:
        warnings.warn(
            f"{name} is normalised with {normalize}, but the config (and so the bundle, "
            f"and predict_scene) with {cfg.norm_stats}; build the dataset with "
            "normalize=cfg.norm_stats.",
            GeoxrWarning,
            stacklevel=4,  # the learner's caller
        )


def _shape_differences(
    stored: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]
) -> str:
    """What differs between a bundle's tensor shapes and a model's, a few of each kind."""

    def some(names: list[str], shapes: dict[str, tuple[int, ...]]) -> str:
        shown = ", ".join(f"{n!r} {shapes[n]}" for n in names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    other = sorted(n for n in set(stored) & set(expected) if stored[n] != expected[n])
    parts = [f"the model's {some(missing, expected)} missing"] if missing else []
    parts += [f"{some(unexpected, stored)} not in the model"] if unexpected else []
    if other:
        parts += [f"{some(other, stored)} in the bundle, {some(other, expected)} in the model"]
    return "; ".join(parts)


#: Config entries a run may change when it resumes: they shape no saved state.
_STATELESS_SETTINGS = frozenset({"solver.num_workers", "class_config.colors"})


def _config_json(cfg: SemanticSegmentationLearnerConfig) -> str:
    """The config as JSON (tuples as lists), as checkpoints keep it."""
    return json.dumps(cfg.to_dict())


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the entries of two config dicts that differ."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


class SemanticSegmentationLearner:
    """Trains a segmentation model on GeoDatasets; saves checkpoints, history and bundles.

    Parameters
    ----------
    cfg : SemanticSegmentationLearnerConfig
        Classes, input bands, model and solver settings. ``norm_stats`` defaults to
        the training dataset's normalisation and travels with the bundle.
    model : torch.nn.Module, optional
        Any module mapping ``(N, C, H, W)`` to logits ``(N, classes, H, W)``.
        Default: the built-in U-Net of ``cfg.model``.
    train_ds, valid_ds : GeoDataset, optional
        Training and validation datasets: a scene's, or several scenes' in a
        ``torch.utils.data.ConcatDataset`` (a ``Subset`` of either works too). With no
        ``norm_stats`` in ``cfg``, the learner takes those ``train_ds`` normalises with.
    output_dir : str or path
        Where ``checkpoint.pt``, ``last-model.pth``, ``history.json`` and bundles go.
    device : str or torch.device, optional
        Default: CUDA if available, else CPU.
    resume : bool
        Continue from ``output_dir/checkpoint.pt`` if it exists.
    seed : int
        Seed for weight init and shuffling.
    progress : bool
        Show tqdm progress bars.
    """

    def __init__(
        self,
        cfg: SemanticSegmentationLearnerConfig,
        *,
        model: nn.Module | None = None,
        train_ds: Dataset[Any] | None = None,
        valid_ds: Dataset[Any] | None = None,
        output_dir: str | os.PathLike[str],
        device: str | torch.device | None = None,
        resume: bool = True,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        if cfg.norm_stats is None and train_ds is not None:
            stats = _norm_stats_of(train_ds, "train_ds")
            cfg = cfg if stats is None else cfg.replace(norm_stats=stats)
        if model is not None and cfg.model.name != "custom":
            cfg = cfg.replace(model=replace(cfg.model, name="custom"))
        self.cfg = cfg
        self.device = check_device(device) or torch.device(
            "cuda" if torch.cuda.is_available() else "cpu"
        )
        self.seed = seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = (model if model is not None else build_model(cfg)).to(self.device)
        self.train_ds, self.valid_ds = train_ds, valid_ds
        for name, ds in (("train_ds", train_ds), ("valid_ds", valid_ds)):
            if ds is not None:
                _check_dataset(ds, cfg, name)
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.classes = cfg.class_config.ensure_null_class()  # what the model outputs
        self.null_class_id = cfg.class_config.ignore_class_id
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._optimizer: torch.optim.Optimizer | None = None  # built on first use (training)
        self._scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        # A checkpoint's optimizer and schedule, kept until train() builds the schedule.
        self._optimizer_state: dict[str, Any] | None = None
        self._scheduler_state: dict[str, Any] | None = None
        if resume and (self.output_dir / CHECKPOINT_NAME).exists():
            self.load_checkpoint()

    # ----------------------------------------------------------------- building
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, built on first use.

        Inference never pays for it, nor for the ``torch._dynamo`` import that
        building a torch optimizer costs (~1.5 s per process).
        """
        if self._optimizer is None:
            self._optimizer = self._build_optimizer()
        return self._optimizer

    def _build_optimizer(self) -> torch.optim.Optimizer:
        s = self.cfg.solver
        s.check()
        params = self.model.parameters()
        if s.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay
            )
        if s.optimizer == "adam":
            return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)

    def _build_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        s = self.cfg.solver
        assert self.train_ds is not None
        items = len(cast(Sized, self.train_ds))  # a map-style dataset: shuffled by index
        steps_per_epoch = math.ceil(items / s.batch_size)
        total = max(1, s.num_epochs * steps_per_epoch)
        sched = torch.optim.lr_scheduler
        if s.lr_schedule == "cosine":
            return sched.CosineAnnealingLR(self.optimizer, T_max=total)
        if s.lr_schedule == "onecycle":
            return sched.OneCycleLR(self.optimizer, max_lr=s.lr, total_steps=total + 1)
        if s.lr_schedule == "step":
            return sched.StepLR(self.optimizer, max(1, s.step_epochs * steps_per_epoch), s.gamma)
        return sched.LambdaLR(self.optimizer, _constant_lr)

    def _checked_class_weights(self) -> torch.Tensor | None:
        """One float32 loss weight per model output (a null class geoxr added weighs 0)."""
        weights = self.cfg.solver.class_weights
        if weights is None:
            return None
        named, outputs = len(self.cfg.class_config), len(self.classes)
        if len(weights) == named < outputs:
            weights = (*weights, 0.0)  # the null class geoxr added: ignored by the loss anyway
        if len(weights) != outputs:
            raise ConfigError(
                f"class_weights has {len(weights)} weights for a class config of {named} "
                f"classes ({list(self.cfg.class_config.names)}); give one weight per class."
            )
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def _loss_fn(self) -> nn.Module:
        self.cfg.solver.check()
        weight = self._checked_class_weights()
        return nn.CrossEntropyLoss(weight=weight, ignore_index=self.null_class_id)

    def _loss_weight(self, y: torch.Tensor, loss_fn: nn.Module) -> float:
        """The denominator of a batch's (weighted mean) loss: its labelled pixels' weights.

        At 0 the loss is 0 / 0: a NaN step would turn every parameter into NaN. Losses
        of several batches average by it into the loss over all their pixels.
        """
        labelled = y != self.null_class_id
        weight = getattr(loss_fn, "weight", None)  # CrossEntropyLoss's class weights
        if weight is None:
            return float(labelled.sum())
        return float(weight[y[labelled]].sum())

    def _loader(self, ds: Dataset[Any], *, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return DataLoader(
            ds,
            batch_size=self.cfg.solver.batch_size,
            shuffle=shuffle,
            num_workers=self.cfg.solver.num_workers,
            generator=generator,
            persistent_workers=False,
        )

    # ----------------------------------------------------------------- training
    def train(self, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs in total have run (default ``cfg.solver.num_epochs``).

        After each epoch: validation metrics, ``history.json``, ``last-model.pth``
        and ``checkpoint.pt`` (from which a new learner resumes).

        Returns
        -------
        list of dict
            The history, one entry per epoch.
        """
        if self.train_ds is None:
            raise ConfigError("This learner has no train_ds; pass train_ds=... to train.")
        epochs = self.cfg.solver.num_epochs if epochs is None else epochs
        loss_fn = self._loss_fn()  # checks the solver settings first
        _check_labelled(self.train_ds, "train_ds")
        if self.valid_ds is not None:
            _check_labelled(self.valid_ds, "valid_ds")
        schedule = self.cfg.solver.lr_schedule
        if schedule in ("onecycle", "cosine") and epochs > self.cfg.solver.num_epochs:
            # onecycle cannot step past its end; cosine would climb back to its peak.
            raise ConfigError(
                f"train({epochs}): the {schedule} LR schedule spans num_epochs="
                f"{self.cfg.solver.num_epochs} and cannot go on past its end. Train at most "
                "that many epochs, or start a run with a larger num_epochs (resume=False)."
            )
        if self._scheduler is None:
            self._scheduler = self._build_scheduler()
            # Resumed: the optimizer's state after the schedule is built (which sets its
            # first step's LR, and onecycle's momentum), then the schedule's, as PyTorch has it.
            if self._optimizer_state is not None:
                self.optimizer.load_state_dict(self._optimizer_state)
            if self._scheduler_state is not None:
                self._scheduler.load_state_dict(self._scheduler_state)
            self._optimizer_state = self._scheduler_state = None
        while self.epoch < epochs:
            start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]  # the epoch's (first step's) LR
            loader = self._loader(self.train_ds, shuffle=True)
            train_loss = self._train_epoch(loader, loss_fn)
            record: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": train_loss, "lr": lr}
            if self.valid_ds is not None:
                record.update(self._validate(self.valid_ds, loss_fn))
            record["time_s"] = round(time.perf_counter() - start, 3)
            self.epoch += 1
            self.history.append(record)
            self._save_epoch()
        return self.history

    def _batches(self, loader: DataLoader, desc: str) -> Iterator[Any]:
        """The loader's batches behind a progress bar, from one iterator of the loader.

        Given the loader itself, tqdm.auto's class makes an iterator of its own
        at once: a second set of workers, and a draw from the shuffling generator
        that changed the batch order.
        """
        return iter(tqdm(iter(loader), total=len(loader), desc=desc, disable=not self.progress))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for ``x``, in float32 whatever its precision.

        Losses and softmax then run in float32 for bfloat16 / float16 logits too (as
        autocast does), and scores convert to numpy (which has no bfloat16).
        """
        dtypes = {p.dtype for p in self.model.parameters() if p.is_floating_point()}
        if len(dtypes) == 1 and (dtype := dtypes.pop()) != x.dtype:
            x = x.to(dtype)  # a model all of bfloat16 weights takes bfloat16 input
        return self.model(x).float()

    def _train_epoch(self, loader: DataLoader, loss_fn: nn.Module) -> float:
        """The epoch's mean batch loss (NaN if no batch had a pixel to learn from)."""
        self.model.train()
        total, batches = 0.0, 0
        for x, y in self._batches(loader, f"train {self.epoch + 1}"):
            x, y = x.to(self.device), y.to(self.device)
            if not self._loss_weight(y, loss_fn):
                continue  # nothing labelled (or weighted) in this batch: nothing to learn
            self.optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(self._logits(x), y)
            loss.backward()
            self.optimizer.step()
            assert self._scheduler is not None
            self._scheduler.step()
            total += float(loss.detach())
            batches += 1
        return total / batches if batches else math.nan

    def validate(
        self, ds: Dataset[Any] | None = None, *, loss_fn: nn.Module | None = None
    ) -> dict[str, Any]:
        """Validation loss, per-class IoU/precision/recall, mIoU and accuracy on ``ds``.

        Null-class pixels (nodata, outside the AOI, unlabelled) are ignored.
        """
        ds = ds if ds is not None else self.valid_ds
        if ds is None:
            raise ConfigError("No dataset to validate on; pass ds=... or valid_ds=...")
        name = "valid_ds" if ds is self.valid_ds else "The validation dataset"
        _check_dataset(ds, self.cfg, name)
        _check_labelled(ds, name)
        return self._validate(ds, loss_fn or self._loss_fn())

    @torch.no_grad()
    def _validate(self, ds: Dataset[Any], loss_fn: nn.Module) -> dict[str, Any]:
        """:meth:`validate` of a dataset already checked (``train()``'s ``valid_ds``)."""
        self.model.eval()
        n = len(self.classes)
        cm = torch.zeros(n, n, dtype=torch.int64)
        loss_sum, weight = 0.0, 0.0
        for x, y in self._batches(self._loader(ds, shuffle=False), "valid"):
            x, y = x.to(self.device), y.to(self.device)
            logits = self._logits(x)
            batch_weight = self._loss_weight(y, loss_fn)
            if batch_weight:
                loss_sum += float(loss_fn(logits, y)) * batch_weight
                weight += batch_weight
            cm += confusion_matrix(
                y.cpu(), logits.argmax(1).cpu(), n, ignore_index=self.null_class_id
            )
        names = list(self.classes.names)
        metrics = segmentation_metrics(cm.numpy(), names, ignore_index=self.null_class_id)
        return {"valid_loss": loss_sum / weight if weight else math.nan, **metrics}

    # ------------------------------------------------------------- persistence
    def _save_epoch(self) -> None:
        state = self.model.state_dict()
        checkpoint = {
            "config": _config_json(self.cfg),
            "epoch": self.epoch,
            "model": state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self._scheduler is None else self._scheduler.state_dict(),
        }
        # Each file is written under a temporary name, then renamed: a crash never leaves
        # a truncated checkpoint, state dict or history behind. The checkpoint comes last:
        # a run resumed from it finds its epochs' history (a resume drops any later entry).
        write_atomically(
            self.output_dir / HISTORY_NAME,
            lambda p: p.write_text(
                json.dumps(without_nan(self.history), indent=2, allow_nan=False)
            ),
        )
        write_atomically(self.output_dir / LAST_MODEL_NAME, lambda p: torch.save(state, p))
        write_atomically(self.output_dir / CHECKPOINT_NAME, lambda p: torch.save(checkpoint, p))

    def load_checkpoint(self) -> None:
        """Restore model, optimizer, schedule and history from ``checkpoint.pt``."""
        path = self.output_dir / CHECKPOINT_NAME
        try:
            checkpoint = torch.load(path, map_location=self.device, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ConfigError(
                f"{str(path)!r} cannot be read ({type(exc).__name__}: {exc}); a run cannot "
                "resume from it. Delete it, give another output_dir, or resume=False to start "
                "afresh there."
            ) from exc
        if "config" in checkpoint:  # checkpoints of earlier geoxr versions have none
            self._check_resumable(json.loads(checkpoint["config"]), path)
        try:
            self.model.load_state_dict(checkpoint["model"])
        except RuntimeError as exc:  # a custom model changed since (its config says "custom")
            raise ConfigError(
                f"{str(path)!r} holds the weights of another model ({exc}); it cannot resume "
                "with this one. Give another output_dir, or resume=False to start afresh there."
            ) from exc
        self.epoch = int(checkpoint["epoch"])
        # train() builds the optimizer and schedule afresh, then loads these.
        self._optimizer_state = checkpoint["optimizer"]
        self._scheduler_state = checkpoint.get("scheduler")
        self._optimizer = self._scheduler = None
        history = self.output_dir / HISTORY_NAME
        try:
            saved = json.loads(history.read_text()) if history.exists() else []
        except ValueError as exc:
            raise ConfigError(
                f"{str(history)!r} is no JSON history ({exc}); the run cannot resume with it. "
                "Delete it (the checkpoint resumes without its epochs' history) or give "
                "another output_dir."
            ) from exc
        self.history = saved[: self.epoch]

    def _check_resumable(self, saved: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint whose run had another config; take its ``norm_stats`` if unset."""
        if self.cfg.norm_stats is None and saved["norm_stats"]:
            # Stats come from train_ds: a learner re-made without it takes the run's.
            self.cfg = self.cfg.replace(norm_stats=BandStats.from_dict(saved["norm_stats"]))
        current = json.loads(_config_json(self.cfg))
        changed = [k for k in _changed_keys(saved, current) if k not in _STATELESS_SETTINGS]
        if changed:
            raise ConfigError(
                f"{str(path)!r} is the checkpoint of a run with another config ({changed} "
                "differ), which it cannot resume. Give another output_dir, or resume=False "
                "to start this run afresh there."
            )

    def save_model_bundle(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write ``model-bundle.zip``: config JSON (schema version) + safetensors weights."""
        target = Path(path) if path is not None else self.output_dir / BUNDLE_NAME
        return write_bundle(target, self.cfg.to_dict(), self.model.state_dict())

    @classmethod
    def from_model_bundle(
        cls,
        path: str | os.PathLike[str],
        *,
        model: nn.Module | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
    ) -> SemanticSegmentationLearner:
        """Rebuild a learner from a bundle, without unpickling anything.

        Built-in models are rebuilt from the config; a custom model must be passed
        as ``model``. Weights must match the model exactly (names and shapes).
        """
        config, stored = read_bundle_header(path)
        try:
            cfg = SemanticSegmentationLearnerConfig.from_dict(config)
        except BundleError as exc:
            raise BundleError(f"Model bundle {str(path)!r}: {exc}") from exc
        if model is None and cfg.model.name == "custom":
            raise BundleError(
                f"Model bundle {str(path)!r} was trained with a custom model; pass the same "
                "architecture as model=... to load its weights."
            )
        # Names and shapes first, of a model without memory: neither weights nor a model
        # of another size (a config edited by hand) take any before they are compared.
        if model is None:
            with torch.device("meta"):
                shapes_of = build_model(cfg)
        else:
            shapes_of = model
        expected = {k: tuple(v.shape) for k, v in shapes_of.state_dict().items()}
        if stored != expected:
            raise BundleError(
                f"The weights in {str(path)!r} do not match the model: "
                f"{_shape_differences(stored, expected)}. Build the model the bundle was "
                "trained with."
            )
        out = Path(output_dir) if output_dir is not None else Path(path).parent
        learner = cls(cfg, model=model, output_dir=out, device=device, resume=False)
        _, state = read_bundle(path)
        try:
            learner.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BundleError(
                f"The weights in {str(path)!r} do not match the model: {exc}"
            ) from exc
        learner.model.eval()
        return learner

    # --------------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, classes, H, W)``, float32, for a normalised batch."""
        self.model.eval()
        logits = self._logits(x.to(self.device))
        expected = len(self.classes)
        if logits.ndim != 4 or logits.shape[1] != expected:
            raise ClassConfigError(
                f"The model returned shape {tuple(logits.shape)}; expected (N, {expected}, H, W): "
                f"one channel per class of {list(self.classes.names)} "
                f"(the null class included). Build the model with num_classes={expected}."
            )
        return torch.softmax(logits, dim=1).cpu()

    def predict_dataset(
        self, ds: GeoDataset, *, batch_size: int | None = None, num_workers: int = 0
    ) -> Iterator[tuple[Window, np.ndarray]]:
        """Yield ``(window, scores)`` per window of ``ds``; scores are float32 ``(classes, H, W)``.

        Feed them to ``SemanticSegmentationLabels.from_predictions(ds.windows,
        learner.predict_dataset(ds), ...)`` to assemble a scene. ``ds`` must be normalised like the training data. Scores
        are NaN where the window's imagery is nodata, as :func:`~geoxr.predict_scene`
        gives them (and so the null class): the main process reads each window's
        nodata mask (a second read of the window; ``predict_scene`` reads once). A
        dataset that resizes or transforms its samples gets no NaN.
        """
        _check_chips(ds, self.cfg, "The dataset")
        if ds.normalize != self.cfg.norm_stats:
            warnings.warn(
                f"{ds!r} is normalised with {ds.normalize}, but the model was trained with "
                f"{self.cfg.norm_stats}; build the dataset with normalize=learner.cfg.norm_stats.",
                GeoxrWarning,
                stacklevel=2,
            )
        loader = DataLoader(
            ds, batch_size=batch_size or self.cfg.solver.batch_size, num_workers=num_workers
        )
        index = 0
        for x, _ in self._batches(loader, "predict"):
            scores = self.predict(x).numpy()
            for chip_scores in scores:
                window = ds.windows[index]
                if ds.transform is None and ds.out_size is None:  # pixels as read
                    chip_scores[:, ds.scene.raster_source.nodata_mask(window)] = np.nan
                yield window, chip_scores
                index += 1
