"""Saved models are safetensors + JSON and load back to the same policy; corrupt files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trpo import TRPO, TRPOConfig
from trpo.run.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TRPO, Path]:
    agent = TRPO("Pendulum-v1", TRPOConfig(n_envs=2, n_steps=128), seed=0).learn(1024)
    path = tmp_path_factory.mktemp("model") / "pendulum"
    agent.save(path)
    return agent, path


def test_round_trip_gives_identical_actions(trained: tuple[TRPO, Path]) -> None:
    agent, path = trained
    loaded = TRPO.load(path)
    obs = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    assert np.array_equal(agent.predict(obs), loaded.predict(obs))
    assert loaded.num_steps == agent.num_steps and loaded.config == agent.config
    assert np.array_equal(loaded.obs_normalizer.rms.mean, agent.obs_normalizer.rms.mean)


def test_saved_files_are_safetensors_and_json(trained: tuple[TRPO, Path]) -> None:
    _, path = trained
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "state.json"]
    state = json.loads((path / "state.json").read_text())
    assert state["env_id"] == "Pendulum-v1" and state["format"] == "trpo-checkpoint"


def test_loaded_model_continues_training(trained: tuple[TRPO, Path]) -> None:
    _, path = trained
    loaded = TRPO.load(path)
    loaded.learn(256)  # 256 more steps: learn(n) continues from the loaded counters
    assert loaded.num_updates == 5


@pytest.mark.parametrize("damage", ["truncate_model", "flip_model", "bad_json", "missing_state", "pickle_model"])
def test_damaged_checkpoint_is_refused(trained: tuple[TRPO, Path], tmp_path: Path, damage: str) -> None:
    _, path = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    model, state = copy / "model.safetensors", copy / "state.json"
    if damage == "truncate_model":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "flip_model":
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "bad_json":
        state.write_text("{not json")
    elif damage == "missing_state":
        state.unlink()
    elif damage == "pickle_model":
        import pickle

        model.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError):
        TRPO.load(copy)


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        TRPO.load(tmp_path / "nope")
