"""Torch devices named by the user: parsed, and checked against what this process has."""

from __future__ import annotations

import torch

from geoxr.errors import ConfigError

__all__ = ["check_device", "parse_device"]


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`; a ConfigError if torch knows no such device.

    Examples
    --------
    >>> parse_device("cuda:1")
    device(type='cuda', index=1)
    >>> parse_device("gpu")
    Traceback (most recent call last):
    ...
    geoxr.errors.ConfigError: device 'gpu' is no torch device ...; give e.g. 'cpu', 'cuda' or 'cuda:1', or None for CUDA where available.
    """
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device {device!r} is no torch device ({exc}); give e.g. 'cpu', 'cuda' or "
            "'cuda:1', or None for CUDA where available."
        ) from exc


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` parsed, if this process has it (``None`` stays ``None``).

    Raises a ConfigError for a GPU this process lacks.

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    """
    if device is None:
        return None
    kind = parse_device(device)
    count = torch.cuda.device_count() if kind.type == "cuda" else None
    missing = (count is not None and (kind.index or 0) >= count) or (
        kind.type == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        have = f"{count} CUDA devices" if count is not None else "no MPS device"
        raise ConfigError(
            f"device {str(device)!r} is not available here ({have}). Give device='cpu', or "
            "None to use CUDA where a worker has it."
        )
    return kind
