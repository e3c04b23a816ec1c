"""The bundle a prediction's workers load, and the token that names its model in dask keys.

A model bundle on disk is named by its path and file identity (a bundle saved again
is another model). An in-memory learner is saved once per process to a temporary
bundle, named by its config and weights: the same model gets the same token in every
process, so a Zarr store it was writing resumes in a later run. The temporary bundles
a process made are removed when it exits (one killed leaves its bundle behind).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import torch
from dask.base import tokenize

from geoxr._files import file_identity
from geoxr.learn import SemanticSegmentationLearner

__all__ = ["bundle_and_token"]

#: This process's temporary bundles, by the token of the learner saved in each.
_temporary: dict[str, Path] = {}
_owner = os.getpid()


def bundle_and_token(
    learner_or_bundle: SemanticSegmentationLearner | str | os.PathLike[str],
) -> tuple[Path, str]:
    """The bundle path workers load, and the token of the model in it.

    Examples
    --------
    >>> import tempfile, geoxr
    >>> cfg = geoxr.SemanticSegmentationLearnerConfig(
    ...     class_config=geoxr.ClassConfig(["a", "b"]), in_channels=3
    ... )
    >>> learner = geoxr.SemanticSegmentationLearner(cfg, output_dir=tempfile.mkdtemp())
    >>> path, token = bundle_and_token(learner)
    >>> bundle_and_token(learner) == (path, token) and path.name
    'model-bundle.zip'
    """
    if not isinstance(learner_or_bundle, SemanticSegmentationLearner):
        path = Path(learner_or_bundle)
        return path, tokenize(str(path.resolve()), file_identity(path))
    state = learner_or_bundle.model.state_dict()
    token = tokenize(
        learner_or_bundle.cfg.to_dict(),
        # Raw bytes: numpy has no bfloat16.
        [
            (
                k,
                str(v.dtype),
                tuple(v.shape),
                v.detach().cpu().reshape(-1).view(torch.uint8).numpy(),
            )
            for k, v in state.items()
        ],
    )
    saved = _temporary.get(token)
    if saved is None or not saved.exists():
        saved = Path(tempfile.mkdtemp(prefix="geoxr-predict-")) / "model-bundle.zip"
        learner_or_bundle.save_model_bundle(saved)
        _temporary[token] = saved
    return saved, token


@atexit.register
def _remove_temporary_bundles() -> None:
    if os.getpid() != _owner:  # a forked child that ran atexit handlers: not its bundles
        return
    for path in _temporary.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    _temporary.clear()
