"""Saving and loading models: safetensors for tensors, JSON for the rest. Nothing here unpickles.

A saved model is a directory holding `model.safetensors` and `state.json` (which records the model
file's SHA-256). The directory is written beside its final name and swapped in, so a crash at any
instant leaves the previous version intact.
"""

from __future__ import annotations

import errno
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
from trpo.run.run_dir import CHECKPOINT, FORMAT, MODEL_FILE, STATE_FILE

FORMAT_VERSION = 1
MAX_STATE_BYTES = 64 << 20
"""The largest state.json read (a checkpoint's is kilobytes; MuJoCo env states with many envs, a few MB)."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of state.json (trpo writes at most about 8 levels)."""
MAX_INT_DIGITS = 40
"""The longest integer literal in state.json (counters and random states fit in 2^128)."""


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
    for path in (directory, tmp, old):
        if path.is_symlink():
            raise CheckpointError(
                f"{path} is a symbolic link; a checkpoint is written only as a real directory: remove the link"
            )
    document = {"format": FORMAT, "version": FORMAT_VERSION, **state}
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model_bytes = save(_contiguous(tensors))
        document["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
        write_synced(tmp / MODEL_FILE, model_bytes)
        write_synced(tmp / STATE_FILE, json.dumps(document, indent=1).encode())
        fsync_dir(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        name = errno.errorcode.get(exc.errno or 0, "")
        raise CheckpointError(
            f"could not write the checkpoint {directory}: {exc.strerror or exc}{f' ({name})' if name else ''}; "
            "the previous checkpoint is intact"
        ) from None
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
    """Read a checkpoint directory (or a run directory); raise `CheckpointError` with a clear reason.
    Only the file format is checked here; `trpo.run.checkpoint_schema` checks the content."""
    directory = resolve_checkpoint_dir(path)
    state = read_state(directory)
    return read_model(directory, state), state


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the non-finite number {name}")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]}, which overflows to infinity")
    return value


def json_depth(value: Any) -> int:
    """How deeply lists and dicts nest in `value` (iterative: any depth is measured safely)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_bounded_json(raw: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON that can be trusted to be small: UTF-8, no NaN/Infinity, integers of at most MAX_INT_DIGITS
    digits, nesting at most `max_depth`; `CheckpointError` (one line naming `where`) otherwise."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_bounded_int, parse_float=_finite_float
        )
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{where} is not UTF-8 text (offset {exc.start}); the checkpoint cannot be used"
        ) from None
    except RecursionError:
        raise CheckpointError(
            f"{where} nests too deeply (more than {max_depth} levels); not a trpo checkpoint"
        ) from None
    except ValueError as exc:  # json.JSONDecodeError and the hooks above
        raise CheckpointError(
            f"{where} is corrupted (not valid JSON: {str(exc)[:200]}); the checkpoint cannot be used"
        ) from None
    if json_depth(value) > max_depth:
        raise CheckpointError(f"{where} nests too deeply (more than {max_depth} levels); not a trpo checkpoint")
    return value


def read_state(directory: Path) -> dict[str, Any]:
    """state.json of a checkpoint directory, read within bounds, with its format marker checked."""
    state_path, model_path = directory / STATE_FILE, directory / MODEL_FILE
    for required in (state_path, model_path):
        if required.is_symlink():
            raise CheckpointError(f"{required} is a symbolic link; a checkpoint's files are read only as real files")
        if not required.is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {required.name} is missing")
    size = state_path.stat().st_size
    if size > MAX_STATE_BYTES:
        raise CheckpointError(
            f"{state_path} is {size:,} bytes; a trpo checkpoint's state.json is at most {MAX_STATE_BYTES:,}"
        )
    with open(state_path, "rb") as f:
        raw = f.read(MAX_STATE_BYTES + 1)
    state = parse_bounded_json(raw, str(state_path))
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f'{state_path} is not a trpo checkpoint (no \'"format": "{FORMAT}"\' entry)')
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{state_path} has checkpoint format version {str(state.get('version'))[:20]}; "
            f"this trpo reads version {FORMAT_VERSION}"
        )
    return state


def read_model(directory: Path, state: dict[str, Any], max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """The tensors of model.safetensors, checked against the SHA-256 in `state` (and at most `max_bytes`)."""
    model_path = directory / MODEL_FILE
    size = model_path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise CheckpointError(
            f"{model_path} is {size:,} bytes, more than the {max_bytes:,} its state.json's config and spaces call for"
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
    return tensors


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
