"""Model bundles: a zip of JSON config and safetensors weights. Loading never unpickles."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from geoxr.errors import BundleError

__all__ = ["read_bundle", "write_bundle"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_ALLOWED = {CONFIG_NAME, WEIGHTS_NAME}
_MAX_CONFIG_BYTES = 16 * 2**20


def write_bundle(
    path: str | os.PathLike[str], config: dict[str, Any], state: dict[str, torch.Tensor]
) -> Path:
    """Write a bundle atomically: a temporary file renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(CONFIG_NAME, json.dumps(config, indent=2))
        zf.writestr(WEIGHTS_NAME, save_safetensors(tensors))
    os.replace(tmp, path)
    return path


def read_bundle(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``(config dict, state dict)`` from a bundle, in memory, without unpickling.

    Raises
    ------
    BundleError
        If the file is not a zip, holds unexpected or unsafe member names, or lacks
        the config or the weights.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"Model bundle {str(path)!r} does not exist; check the path.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            unsafe = [n for n in names if n.startswith(("/", "\\")) or ".." in Path(n).parts]
            unknown = sorted(set(names) - _ALLOWED)
            if unsafe or unknown:
                raise BundleError(
                    f"Model bundle {str(path)!r} holds unexpected members {unsafe or unknown}; "
                    f"a geoxr bundle holds only {sorted(_ALLOWED)}. Refusing to load it."
                )
            missing = sorted(_ALLOWED - set(names))
            if missing:
                raise BundleError(f"Model bundle {str(path)!r} lacks {missing}.")
            if zf.getinfo(CONFIG_NAME).file_size > _MAX_CONFIG_BYTES:
                raise BundleError(f"Model bundle {str(path)!r} has an oversized config.")
            config = json.loads(zf.read(CONFIG_NAME))
            state = load_safetensors(zf.read(WEIGHTS_NAME))
    except zipfile.BadZipFile as exc:
        raise BundleError(
            f"Model bundle {str(path)!r} is not a zip file ({exc}); expected a bundle written "
            "by Learner.save_model_bundle()."
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"Model bundle {str(path)!r} has an unreadable config: {exc}.") from exc
    except Exception as exc:  # safetensors raises its own error types
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"Model bundle {str(path)!r} has unreadable weights: {exc}.") from exc
    return config, state
