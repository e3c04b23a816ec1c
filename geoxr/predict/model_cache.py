"""Models reach dask workers as a bundle path and are loaded once per worker process."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from geoxr.learn import SemanticSegmentationLearner

__all__ = ["ModelRef", "load_cached", "loads_so_far"]

_lock = threading.Lock()
_cache: dict[tuple[int, str, float, str | None, str], SemanticSegmentationLearner] = {}
_loads = 0


@dataclass(frozen=True)
class ModelRef:
    """What a prediction task carries instead of a model: the bundle path and device.

    ``model_factory`` builds the architecture of a bundle trained with a custom
    ``nn.Module`` (a picklable zero-argument callable, e.g.
    ``functools.partial(MyNet, in_channels=3)``); its weights come from the bundle.
    """

    bundle_path: str
    device: str | None = None
    model_factory: Callable[[], nn.Module] | None = None

    @classmethod
    def of(
        cls,
        path: str | os.PathLike[str],
        device: str | None = None,
        model_factory: Callable[[], nn.Module] | None = None,
    ) -> ModelRef:
        """A reference to a bundle on disk (absolute path)."""
        return cls(str(Path(path).resolve()), device, model_factory)


def load_cached(ref: ModelRef) -> SemanticSegmentationLearner:
    """This process's learner for ``ref``: loaded from the bundle on first use, then reused.

    The cache key includes the bundle's modification time, so a rewritten bundle
    is loaded afresh.
    """
    global _loads
    mtime = os.path.getmtime(ref.bundle_path)
    key = (os.getpid(), ref.bundle_path, mtime, ref.device, repr(ref.model_factory))
    learner = _cache.get(key)
    if learner is None:
        with _lock:
            learner = _cache.get(key)
            if learner is None:
                model = None if ref.model_factory is None else ref.model_factory()
                learner = SemanticSegmentationLearner.from_model_bundle(
                    ref.bundle_path,
                    model=model,
                    device=ref.device,
                    output_dir=Path(ref.bundle_path).parent,
                )
                learner.progress = False
                _cache[key] = learner
                _loads += 1
    return learner


def loads_so_far() -> int:
    """How many bundles this process has loaded (for tests and diagnostics)."""
    return _loads
