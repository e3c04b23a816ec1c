"""Models reach dask workers as a bundle path and are loaded once per worker process."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dask.base import tokenize
from torch import nn

from geoxr._devices import check_device, parse_device
from geoxr._files import file_identity
from geoxr._fork_safe_lock import ForkSafeLock
from geoxr.learn import SemanticSegmentationLearner

__all__ = ["ModelRef", "load_cached", "loads_so_far"]

# Held for a whole bundle load: a process forked meanwhile gets a free lock.
_lock = ForkSafeLock()
#: (process, bundle path, device, factory token) -> (the bundle's file identity, its learner).
_cache: dict[
    tuple[int, str, str | None, str],
    tuple[tuple[int, int, int] | None, SemanticSegmentationLearner],
] = {}
_loads = 0
#: Learners a process keeps: the least recently loaded goes first. A program predicting
#: with each epoch's learner (a bundle per epoch) kept every one of them.
MAX_CACHED_MODELS = 4


@dataclass(frozen=True)
class ModelRef:
    """What a prediction task carries instead of a model: the bundle path and device.

    ``model_factory`` builds the architecture of a bundle trained with a custom
    ``nn.Module`` (a picklable zero-argument callable, e.g.
    ``functools.partial(MyNet, in_channels=3)``, or a lambda); its weights come from
    the bundle. ``factory_token`` names the factory in the model cache's keys, the same
    in every copy of the reference: a factory unpickled anew for every task (a lambda
    or closure on a dask cluster) is still loaded once per worker. It names what the
    factory builds (the module's class, its source and its layers), built once here:
    the same model gets the same token in every process, so a prediction's store
    resumes in a later run (a lambda or a class of the user's script has a token of
    its own in every process).
    """

    bundle_path: str
    device: str | None = None
    model_factory: Callable[[], nn.Module] | None = None
    factory_token: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "factory_token", _architecture_token(self.model_factory))
        if self.device is not None:
            parse_device(self.device)  # the workers' own devices are checked where they run

    @classmethod
    def of(
        cls,
        path: str | os.PathLike[str],
        device: str | None = None,
        model_factory: Callable[[], nn.Module] | None = None,
    ) -> ModelRef:
        """A reference to a bundle on disk (absolute path)."""
        return cls(str(Path(path).resolve()), device, model_factory)


def _architecture_token(factory: Callable[[], nn.Module] | None) -> str:
    """A token of the model ``factory`` builds, the same in every process (see ModelRef)."""
    if factory is None:
        return tokenize(None)
    model = factory()
    kind = type(model)
    try:
        source: str | None = inspect.getsource(kind)
    except (OSError, TypeError):  # defined in a notebook cell or an interactive session
        source = None
    return tokenize(kind.__module__, kind.__qualname__, source, repr(model))


def load_cached(ref: ModelRef) -> SemanticSegmentationLearner:
    """This process's learner for ``ref``: loaded from the bundle on first use, then reused.

    A bundle saved again (another inode, size or modification time) is loaded
    afresh, in place of the learner loaded before. At most
    :data:`MAX_CACHED_MODELS` learners are kept.
    """
    global _loads
    identity = file_identity(ref.bundle_path)
    key = (os.getpid(), ref.bundle_path, ref.device, ref.factory_token)
    cached = _cache.get(key)
    if cached is None or cached[0] != identity:
        with _lock:
            cached = _cache.get(key)
            if cached is None or cached[0] != identity:
                check_device(ref.device)
                model = None if ref.model_factory is None else ref.model_factory()
                learner = SemanticSegmentationLearner.from_model_bundle(
                    ref.bundle_path,
                    model=model,
                    device=ref.device,
                    output_dir=Path(ref.bundle_path).parent,
                )
                learner.progress = False
                _cache.pop(key, None)
                while len(_cache) >= MAX_CACHED_MODELS:
                    del _cache[next(iter(_cache))]  # the least recently loaded
                cached = _cache[key] = (identity, learner)
                _loads += 1
    return cached[1]


def loads_so_far() -> int:
    """How many bundles this process has loaded (for tests and diagnostics)."""
    return _loads
