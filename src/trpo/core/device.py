"""Where the update runs: `device` names ('auto', 'cpu', 'cuda', 'cuda:N') resolved against this machine."""

from __future__ import annotations

import torch

from trpo.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """The torch device `name` means here; ConfigError (one line) for a device this machine does not have.

    'auto' is the first CUDA device when CUDA is available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N (got {name!r})") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N (got {name!r})")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine; use --device cpu (or auto)")
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def needs_rollout_copy(device: torch.device) -> bool:
    """Whether rollouts need CPU copies of the networks: sampling steps one observation batch at a time,
    which a GPU makes slower, so the update runs on `device` and rollout inference on the CPU."""
    return device.type != "cpu"
