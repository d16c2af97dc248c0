"""Saving and loading models: safetensors for tensors, JSON for the rest. Nothing here unpickles.

A saved model is a directory holding `model.safetensors` and `state.json` (which records the model
file's SHA-256). The directory is written beside its final name and swapped in, so a crash at any
instant leaves the previous version intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from trpo.errors import UserError
from trpo.files import fsync_dir, write_synced
from trpo.run.run_dir import CHECKPOINT

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.json"
FORMAT = "trpo-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, corrupted or not ours."""


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write tensors and JSON state as the directory `directory`, replacing it atomically.

    Both files go to a sibling `<name>.tmp/` first (fsynced); then the old directory is renamed to
    `<name>.old/`, the new one into place, and the old one removed. A crash at any instant leaves a
    complete checkpoint at `<name>/` or, between the two renames, at `<name>.old/` (which
    `load_checkpoint` falls back to).
    """
    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model_bytes = save(_contiguous(tensors))
    document = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    document["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
    write_synced(tmp / MODEL_FILE, model_bytes)
    write_synced(tmp / STATE_FILE, json.dumps(document, indent=1).encode())
    fsync_dir(tmp)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(directory, old)
    os.rename(tmp, directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """Accept a model directory or a run directory (whose model is in `checkpoint/`)."""
    path = Path(path)
    if path.name == CHECKPOINT and not path.exists() and path.with_name(f"{CHECKPOINT}.old").is_dir():
        return path.with_name(f"{CHECKPOINT}.old")  # a crash interrupted the swap in save_checkpoint
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; pass a run directory written by `trpo train` or a saved model")
    if (path / CHECKPOINT).is_dir() or (path / f"{CHECKPOINT}.old").is_dir():
        return resolve_checkpoint_dir(path / CHECKPOINT)
    if (path / STATE_FILE).exists() or (path / MODEL_FILE).exists():
        return path
    raise CheckpointError(
        f"{path} holds no checkpoint ({STATE_FILE} and {MODEL_FILE}); was the run stopped before its first update?"
    )


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint directory (or a run directory); raise `CheckpointError` with a clear reason."""
    directory = resolve_checkpoint_dir(path)
    state_path, model_path = directory / STATE_FILE, directory / MODEL_FILE
    for required in (state_path, model_path):
        if not required.is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {required.name} is missing")
    try:
        state = json.loads(state_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{state_path} is corrupted (not valid JSON: {exc}); the checkpoint cannot be used"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f'{state_path} is not a trpo checkpoint (no \'"format": "{FORMAT}"\' entry)')
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{state_path} has checkpoint format version {state.get('version')}; "
            f"this trpo reads version {FORMAT_VERSION}"
        )
    model_bytes = model_path.read_bytes()
    if hashlib.sha256(model_bytes).hexdigest() != state.get("model_sha256"):
        raise CheckpointError(
            f"{model_path} does not match the checksum in {STATE_FILE}: the file is truncated or corrupted"
        )
    try:
        tensors = load(model_bytes)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{model_path} is corrupted ({exc}); the checkpoint cannot be used") from None
    return tensors, state


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state (e.g. Adam's step, exp_avg, exp_avg_sq) as named tensors
    `prefix.<parameter index>.<key>`; hyperparameters come from the config and are not saved."""
    tensors: dict[str, torch.Tensor] = {}
    for i, param_state in optimizer.state_dict()["state"].items():
        for key, value in param_state.items():
            tensors[f"{prefix}.{i}.{key}"] = torch.as_tensor(value)
    return tensors


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Restore the state written by `optimizer_tensors` (a no-op when the checkpoint has none)."""
    state = optimizer.state_dict()
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1 :].split(".", 1)
            entries.setdefault(int(index), {})[key] = value
    if entries:
        state["state"].update(entries)
        optimizer.load_state_dict(state)
