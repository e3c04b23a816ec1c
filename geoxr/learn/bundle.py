"""Model bundles: a zip of JSON config and safetensors weights. Loading never unpickles."""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from geoxr._files import write_atomically
from geoxr.errors import BundleError

__all__ = ["read_bundle", "read_bundle_config", "read_bundle_header", "write_bundle"]

T = TypeVar("T")  # what a bundle reader makes of the weights

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_ALLOWED = {CONFIG_NAME, WEIGHTS_NAME}
_MAX_CONFIG_BYTES = 16 * 2**20
_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def write_bundle(
    path: str | os.PathLike[str], config: dict[str, Any], state: dict[str, torch.Tensor]
) -> Path:
    """Write a bundle atomically: a temporary file renamed into place when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors, storages = {}, set()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):  # a module's get_extra_state(), say
            raise BundleError(
                f"The model's state {name!r} is a {type(value).__name__}, not a tensor; "
                "bundles hold tensors only (safetensors). Keep that state in a buffer "
                "(register_buffer) or in the config."
            )
        tensor = value.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        # safetensors refuses tensors that share memory (tied weights): each gets a copy.
        tensors[name] = tensor.clone() if storage in storages else tensor
        storages.add(storage)

    def write(tmp: Path) -> None:
        # No timestamps: the same model saved again is the same bytes (the same prediction
        # job, whose store then resumes; see geoxr.predict.bundle_ref).
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in (
                (CONFIG_NAME, json.dumps(config, indent=2).encode()),
                (WEIGHTS_NAME, save_safetensors(tensors)),
            ):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16  # rw-r--r--, as a file written now
                zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)

    return write_atomically(path, write)


def read_bundle(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read ``(config dict, state dict)`` from a bundle, in memory, without unpickling.

    Raises
    ------
    BundleError
        If the file is not a zip, holds unexpected or unsafe member names, or lacks
        the config or the weights, or either is unreadable.
    """
    return _read(path, lambda zf: load_safetensors(zf.read(WEIGHTS_NAME)))


def read_bundle_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of a bundle, without loading its weights.

    The weights' safetensors header (tensor names, dtypes, shapes and where their
    data lie) is read and checked against the size of the weights. A truncated
    weights file, or a header that does not match its data, is rejected here as
    :func:`read_bundle` rejects it, at a fraction of the cost: the weights are not
    inflated (0.55 s for a 25-million-parameter model). Damage inside the tensor
    data (a bad CRC) shows only when the weights are loaded.

    Raises
    ------
    BundleError
        As :func:`read_bundle`.

    Examples
    --------
    >>> import tempfile
    >>> path = write_bundle(
    ...     Path(tempfile.mkdtemp()) / "b.zip", {"schema_version": 1}, {"w": torch.zeros(2)}
    ... )
    >>> read_bundle_config(path)
    {'schema_version': 1}
    >>> read_bundle_header(path)
    ({'schema_version': 1}, {'w': (2,)})
    """
    return read_bundle_header(path)[0]


def read_bundle_header(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The config and the shape of every tensor of the weights, without inflating them.

    Compared with a model's ``state_dict()``, the shapes refuse weights of another
    model before they take memory (a small zip may declare gigabytes of tensors).
    See :func:`read_bundle_config` for the checks and an example.
    """
    return _read(path, _check_weights_header)


def _read(
    path: str | os.PathLike[str], read_weights: Callable[[zipfile.ZipFile], T]
) -> tuple[dict[str, Any], T]:
    """The bundle's config and ``read_weights(zip)``; any failure as :class:`BundleError`."""
    path = Path(path)
    with _open_bundle(path) as zf:
        config = _config(zf, path)
        try:
            weights = read_weights(zf)
        except Exception as exc:  # safetensors and zipfile raise their own error types
            raise BundleError(
                f"Model bundle {str(path)!r} has unreadable weights: {exc}."
            ) from exc
    return config, weights


@contextmanager
def _open_bundle(path: Path) -> Iterator[zipfile.ZipFile]:
    """The bundle's zip, its member names checked; errors as :class:`BundleError`."""
    if path.is_dir():
        raise BundleError(
            f"Model bundle {str(path)!r} is a directory; give the bundle's .zip file "
            "(save_model_bundle writes one)."
        )
    if not path.is_file():
        raise BundleError(f"Model bundle {str(path)!r} does not exist; check the path.")
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # not a zip, unreadable, member names that do not decode
        raise BundleError(
            f"Model bundle {str(path)!r} is not a readable zip file ({exc}); expected a "
            "bundle written by Learner.save_model_bundle()."
        ) from exc
    with zf:
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
        yield zf


def _config(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    if zf.getinfo(CONFIG_NAME).file_size > _MAX_CONFIG_BYTES:
        raise BundleError(f"Model bundle {str(path)!r} has an oversized config.")
    try:
        config = json.loads(zf.read(CONFIG_NAME))
    except Exception as exc:  # a damaged member (zipfile, zlib) or no JSON
        raise BundleError(f"Model bundle {str(path)!r} has an unreadable config: {exc}.") from exc
    if not isinstance(config, dict):
        raise BundleError(
            f"Model bundle {str(path)!r} has a config that is a JSON {type(config).__name__}, "
            "not an object; expected a bundle written by Learner.save_model_bundle()."
        )
    return config


def _check_weights_header(zf: zipfile.ZipFile) -> dict[str, tuple[int, ...]]:
    """The tensors' shapes, from the weights' safetensors header checked against their size.

    Only the header is inflated. Every tensor has a known dtype and exactly the bytes
    its shape needs, and the tensors' data fill the rest of the file without gaps, as
    safetensors requires.
    """
    size = zf.getinfo(WEIGHTS_NAME).file_size
    with zf.open(WEIGHTS_NAME) as weights:
        head = weights.read(8)
        if len(head) < 8:
            raise ValueError(f"{size} bytes, shorter than a safetensors header")
        length = int.from_bytes(head, "little")
        if length > min(size - 8, _MAX_HEADER_BYTES):
            raise ValueError(f"a header of {length} bytes in {size} bytes")
        header = json.loads(weights.read(length))
    spans, shapes = [], {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shapes[name] = tuple(int(n) for n in info["shape"])
        begin, end = info["data_offsets"]
        itemsize = _DTYPE_BYTES.get(info["dtype"])
        if itemsize is None:
            raise ValueError(f"tensor {name!r} has an unknown dtype {info['dtype']!r}")
        if end - begin != itemsize * math.prod(info["shape"]):
            raise ValueError(f"tensor {name!r} has {end - begin} bytes for shape {info['shape']}")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"the tensors' data have a gap or an overlap at byte {begin}")
        position = end
    if position != size - 8 - length:
        raise ValueError(f"the tensors' data end at byte {position} of {size - 8 - length}")
    return shapes
