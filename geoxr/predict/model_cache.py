"""Models reach dask workers as a bundle path and are loaded once per worker process."""

from __future__ import annotations

import functools
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
    or closure on a dask cluster) is still loaded once per worker. It names the
    factory by its code and arguments (see :func:`_factory_token`), without calling
    it: the same factory gets the same token in every process, so a prediction's
    store resumes in a later run (dask's token of a lambda or of a class of the
    user's script differs from process to process).
    """

    bundle_path: str
    device: str | None = None
    model_factory: Callable[[], nn.Module] | None = None
    factory_token: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "factory_token", _factory_token(self.model_factory))
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


def _factory_token(factory: object) -> str:
    """A token of ``factory``, the same in every process where its code is the same.

    A class or function is named by its module, name and the whole source of its
    module (any change to the script that defines it is another model); a lambda or
    closure also by what it closes over; a ``functools.partial`` by its function and
    arguments. Anything else, or code without a source file (a notebook cell), has
    dask's token, which may differ from process to process.

    Examples
    --------
    >>> import functools
    >>> _factory_token(functools.partial(nn.Conv2d, 3, 2, 1)) == _factory_token(
    ...     functools.partial(nn.Conv2d, 3, 2, 1))
    True
    >>> _factory_token(functools.partial(nn.Conv2d, 3, 2, 1)) == _factory_token(
    ...     functools.partial(nn.Conv2d, 3, 2, 3))
    False
    """
    if isinstance(factory, functools.partial):
        return tokenize(_factory_token(factory.func), factory.args, factory.keywords)
    if not (inspect.isclass(factory) or inspect.isfunction(factory)):
        return tokenize(factory)
    module = inspect.getmodule(factory)
    try:
        source = inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        source = None
    if source is None:
        return tokenize(factory)
    parts: list[object] = [factory.__module__, factory.__qualname__, source]
    if inspect.isfunction(factory):
        cells = [cell.cell_contents for cell in factory.__closure__ or ()]
        parts += [
            factory.__code__.co_firstlineno,
            factory.__defaults__,
            factory.__kwdefaults__,
            [_factory_token(c) if callable(c) else c for c in cells],
        ]
    return tokenize(*parts)


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
