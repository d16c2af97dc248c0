"""Loading never executes code; NaN/inf from environments or the math is caught and handled."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from probes import ConstantReward
from trpo import TRPO, TRPOConfig
from trpo.errors import NonFiniteEnvError, TrainingStopped
from trpo.run.checkpoint import CheckpointError


class Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model"
    TRPO("CartPole-v1", TRPOConfig(n_envs=2, n_steps=32), seed=0).learn(64).save(path)
    return path


@pytest.mark.parametrize("victim", ["model.safetensors", "state.json"])
def test_pickle_payload_in_any_checkpoint_file_is_refused_and_never_runs(
    saved: Path, tmp_path: Path, victim: str
) -> None:
    copy = tmp_path / "ckpt"
    copy.mkdir()
    for f in saved.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    marker = tmp_path / "pwned"
    (copy / victim).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError):
        TRPO.load(copy)
    result = subprocess.run([sys.executable, "-m", "trpo", "eval", str(copy)], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_load_path_never_unpickles(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling on the load path")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    agent = TRPO.load(saved)
    assert agent.num_updates == 1  # 64 steps at a batch of 2 x 32


class NaNAt(gym.Wrapper):
    """Returns NaN as reward (or observation) at one step of one env copy."""

    def __init__(self, env: gym.Env, at: int, field: str, every_episode: bool = False) -> None:
        super().__init__(env)
        self.at, self.field, self.every_episode = at, field, every_episode
        self.t = 0

    def reset(self, **kwargs: Any) -> Any:
        if self.every_episode:
            self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            if self.field == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.inf)
        return obs, reward, terminated, truncated, info


def nan_env_factory(at: int, field: str, every_episode: bool = False) -> Any:
    count = {"n": 0}

    def make() -> gym.Env:
        count["n"] += 1
        env = gym.make("CartPole-v1")
        # only the second env copy misbehaves (the first made is the space probe, then env 0, env 1)
        return NaNAt(env, at, field, every_episode) if count["n"] == 3 else env

    return make


@pytest.mark.parametrize("field", ["reward", "observation"])
def test_nonfinite_env_output_raises_with_env_index_and_step(field: str) -> None:
    agent = TRPO(nan_env_factory(at=5, field=field), TRPOConfig(n_envs=2, n_steps=16), seed=0)
    with pytest.raises(NonFiniteEnvError) as info:
        agent.learn(64)
    assert info.value.env_index == 1 and info.value.step == 10
    assert f"environment 1 returned a non-finite {field} at step 10" in str(info.value)
    assert np.isfinite(agent.obs_normalizer.rms.mean).all()  # the bad value never reached the statistics


def test_skip_batch_drops_the_batch_and_goes_on() -> None:
    config = TRPOConfig(n_envs=2, n_steps=16, on_nonfinite="skip_batch")
    agent = TRPO(nan_env_factory(at=5, field="reward"), config, seed=0).learn(96)
    assert agent.skipped_batches == 1 and agent.num_updates == 3
    assert all(torch.isfinite(p).all() for p in agent.actor.parameters())


def test_too_many_rejections_stop_training_with_a_checkpoint(tmp_path: Path) -> None:
    config = TRPOConfig(n_envs=2, n_steps=16, on_nonfinite="skip_batch", max_rejected_updates=3)
    agent = TRPO(nan_env_factory(at=2, field="reward", every_episode=True), config, seed=0)
    with pytest.raises(TrainingStopped, match="3 updates in a row were rejected"):
        agent.learn(10_000, run_dir=tmp_path)
    assert (tmp_path / "checkpoint" / "state.json").exists()


def test_nonfinite_gradient_is_rejected_and_old_policy_kept() -> None:
    agent = TRPO(ConstantReward, TRPOConfig(n_envs=2, n_steps=32), seed=0)
    batch = agent.start_sampler().collect(0.99, 0.95)
    batch.advantages[3] = float("nan")
    before = [p.detach().clone() for p in agent.actor.parameters()]
    diagnostics = agent.update(batch)
    assert diagnostics["train/step_rejected"] == 1.0 and diagnostics["train/nonfinite_rejected"] == 1.0
    assert agent.last_rejection == "non-finite policy gradient"
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))
