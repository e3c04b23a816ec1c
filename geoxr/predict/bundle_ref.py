"""The bundle a prediction's workers load, and the token that names its model in dask keys.

A model bundle on disk is named by its path and a digest of its bytes: a bundle saved
again with the same config and weights (bundles hold no timestamps) is the same model,
whose store resumes; any other is another model. The digest is computed once per file
identity (inode, size, modification time) in a process. An in-memory learner is saved once per process to a temporary
bundle, named by its config and weights: the same model gets the same token in every
process, so a Zarr store it was writing resumes in a later run. The temporary bundles
a process made are removed when it exits (one killed leaves its bundle behind).
"""

from __future__ import annotations

import atexit
import hashlib
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
        return path, tokenize(str(path.resolve()), _digest(path))
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


#: Digests of bundles read in this process, by path and file identity.
_digests: dict[tuple[str, tuple[int, int, int] | None], str | None] = {}


def _digest(path: Path) -> str | None:
    """SHA-256 of the file at ``path`` (``None`` if it cannot be read: loading it will say why)."""
    key = (str(path.resolve()), file_identity(path))
    if key not in _digests:
        try:
            with open(path, "rb") as f:
                _digests[key] = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None
    return _digests[key]


@atexit.register
def _remove_temporary_bundles() -> None:
    if os.getpid() != _owner:  # a forked child that ran atexit handlers: not its bundles
        return
    for path in _temporary.values():
        shutil.rmtree(path.parent, ignore_errors=True)
    _temporary.clear()
