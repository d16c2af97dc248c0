"""Exact resume: a run saved and resumed ends bitwise identical to the same run uninterrupted."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from probes import Endless
from trpo import TRPO, TRPOConfig
from trpo.run.progress import truncate_progress


def snapshot(agent: TRPO) -> dict[str, torch.Tensor]:
    out = {f"actor.{k}": v.clone() for k, v in agent.actor.state_dict().items()}
    out |= {f"critic.{k}": v.clone() for k, v in agent.critic.state_dict().items()}
    out["obs_mean"] = torch.from_numpy(agent.obs_normalizer.rms.mean.copy())
    out["ret_var"] = torch.tensor(agent.reward_scaler.rms.var)
    return out


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


CASES = {
    "CartPole-v1": TRPOConfig(n_envs=2, n_steps=128),
    "Pendulum-v1": TRPOConfig(n_envs=2, n_steps=128, use_sde=True),
    "InvertedPendulum-v5": TRPOConfig(n_envs=2, n_steps=64),
}


@pytest.mark.parametrize("env_id", list(CASES))
def test_interrupted_and_resumed_run_is_bitwise_identical(env_id: str, tmp_path: Path) -> None:
    config = CASES[env_id]
    steps = 6 * config.batch_size
    straight = TRPO(env_id, config, seed=1).learn(steps)
    straight.close()

    first = TRPO(env_id, config, seed=1).learn(2 * config.batch_size)
    first.save(tmp_path / "ckpt")
    first.close()
    resumed = TRPO.load(tmp_path / "ckpt").learn(until=steps)
    resumed.close()
    assert resumed.num_updates == straight.num_updates == 6
    assert_identical(snapshot(straight), snapshot(resumed))
    assert list(resumed.start_sampler().stats.returns) == list(straight.start_sampler().stats.returns)


def test_resuming_one_checkpoint_twice_gives_identical_weights(tmp_path: Path) -> None:
    config = TRPOConfig(n_envs=2, n_steps=64)
    TRPO("Pendulum-v1", config, seed=0).learn(256).save(tmp_path / "ckpt")
    a = TRPO.load(tmp_path / "ckpt").learn(until=640)
    b = TRPO.load(tmp_path / "ckpt").learn(until=640)
    assert_identical(snapshot(a), snapshot(b))


def test_env_without_capturable_state_restarts_episodes(tmp_path: Path) -> None:
    config = TRPOConfig(n_envs=2, n_steps=16, normalize_obs=False)
    agent = TRPO(lambda: Endless(limit=100), config, seed=0).learn(64)
    agent.save(tmp_path / "ckpt")
    resumed = TRPO.load(tmp_path / "ckpt", env=lambda: Endless(limit=100))
    collector = resumed.start_sampler()
    assert [env.unwrapped.t for env in collector.envs.envs] == [0, 0]  # type: ignore[attr-defined]
    resumed.learn(until=128)
    assert resumed.num_updates == 4


def test_truncate_progress_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "progress.csv"
    rows = [["time/steps", "time/updates", "x"]] + [[str(64 * i), str(i), str(i * 0.5)] for i in range(1, 6)]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    truncate_progress(path, 3)
    with open(path, newline="") as f:
        kept = list(csv.reader(f))
    assert kept == rows[:4]


def test_checkpoint_every_writes_periodic_checkpoints(tmp_path: Path) -> None:
    config = TRPOConfig(n_envs=2, n_steps=32, checkpoint_every=2)
    agent = TRPO("CartPole-v1", config, seed=0)
    saves: list[int] = []
    save = agent.save
    agent.save = lambda path: (saves.append(agent.num_updates), save(path))[1]  # type: ignore[method-assign]
    agent.learn(3 * 64, run_dir=tmp_path)
    assert saves == [2, 3]  # after update 2 (checkpoint_every) and at the end, each once
    loaded = TRPO.load(tmp_path)
    assert loaded.num_updates == 3  # the final checkpoint
    observation = np.zeros(4, np.float32)
    assert loaded.predict(observation) == agent.predict(observation)
