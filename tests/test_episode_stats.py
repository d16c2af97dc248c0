"""Training episode statistics and the reward scaler's running return restart with every episode,
whether it ended by termination or by a time-limit truncation, in every sampler."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from conftest import collect
from probes import Endless
from trpo import TRPO, TRPOConfig

SAMPLERS = [{"sampler": "sync"}, {"sampler": "process", "workers": 2}]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s["sampler"])
@pytest.mark.parametrize("terminate", [False, True], ids=["truncated", "terminated"])
def test_logged_episode_return_is_one_episodes_return(tmp_path: Path, sampler: dict, terminate: bool) -> None:
    """Endless(limit=5): reward 1 per step, episodes of 5 steps, so every logged return is exactly 5."""
    config = TRPOConfig(n_envs=2, n_steps=20, eval_episodes=0, checkpoint_every=0, **sampler)
    agent = TRPO(partial(Endless, 5, terminate), config, seed=0)
    agent.learn(120, run_dir=tmp_path)
    agent.close()
    with open(tmp_path / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert [float(r["rollout/ep_return_mean"]) for r in rows] == [5.0, 5.0, 5.0]
    assert [float(r["rollout/ep_len_mean"]) for r in rows] == [5.0, 5.0, 5.0]
    assert float(rows[-1]["rollout/episodes"]) == 24


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s["sampler"])
@pytest.mark.parametrize("terminate", [False, True], ids=["truncated", "terminated"])
def test_reward_scaler_return_restarts_with_each_episode(sampler: dict, terminate: bool) -> None:
    """After 12 steps of 5-step episodes, each env is 2 steps into its third episode: R = 1 + gamma."""
    config = TRPOConfig(n_envs=2, n_steps=12, gamma=0.9, normalize_reward=True, **sampler)
    agent = TRPO(partial(Endless, 5, terminate), config, seed=0)
    collect(agent)
    agent.close()
    assert np.allclose(agent.reward_scaler.returns, [1.9, 1.9])
