"""The Ray sampler on one local Ray instance limited to 2 CPUs (shared by every test of this module)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from conftest import require
from test_samplers import assert_valid, updates_in
from trpo import TRPO, TRPOConfig
from trpo.sampling.ray_cluster import RaySampler, StaleBatchError, check_version

ray = require("ray", "ray")

# 2 workers x 2 envs of CartPole; small batches so that a test runs many updates in seconds
CONFIG = TRPOConfig(
    sampler="ray", workers=2, n_envs=4, n_steps=128, gae_lambda=0.98, vf_epochs=10, vf_minibatch_size=128,
    eval_episodes=0,
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def sampler_of(agent: TRPO) -> RaySampler:
    sampler = agent.start_sampler()
    assert isinstance(sampler, RaySampler)
    return sampler


def test_batches_are_valid_and_normaliser_statistics_are_merged() -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        sampler = sampler_of(agent)
        batch = sampler.collect(0.99, 0.95)
        assert_valid(batch, 512, 4)
        # every observation the workers saw (2 x 2 reset observations, then 4 x 128 steps) is in the learner's
        assert agent.obs_normalizer.rms.count == 4 + 512
        assert agent.reward_scaler.rms.count == 512
        assert sampler.version == 1
        second = sampler.collect(0.99, 0.95)
        assert agent.obs_normalizer.rms.count == 4 + 2 * 512
        assert not torch.equal(second.obs, batch.obs)
    finally:
        agent.close()


def test_ray_sampler_learns(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(24 * 512, run_dir=tmp_path)
    finally:
        agent.close()
    rows = updates_in(tmp_path)
    assert [r["time/updates"] for r in rows] == list(range(1, 25))
    assert [r["sampler/policy_version"] for r in rows] == list(range(1, 25))
    assert rows[-1]["rollout/ep_return_mean"] > 100  # a random policy averages ~22


def test_a_batch_of_another_policy_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StaleBatchError):
        check_version(3, 4, worker=1)
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        sampler = sampler_of(agent)
        policy = sampler._policy
        monkeypatch.setattr(sampler, "_policy", lambda: policy().__class__(sampler.version - 1, *_fields(policy())))
        with pytest.raises(StaleBatchError, match="expected 1"):
            sampler.collect(0.99, 0.95)
    finally:
        agent.close()


def _fields(policy: Any) -> tuple[Any, ...]:
    return policy.actor, policy.obs_rms


def test_a_killed_worker_is_restarted_and_training_goes_on_without_a_gap(tmp_path: Path) -> None:
    """SIGKILL a worker's process while the run goes on: Ray restarts it, the share is re-sampled."""
    config = CONFIG.replace(n_steps=512)
    agent = TRPO("CartPole-v1", config, seed=0)
    killed: list[int] = []

    def kill_when_running() -> None:
        deadline = time.monotonic() + 60
        while agent.num_updates < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = sampler_of(agent).pids[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    sampler = sampler_of(agent)  # Ray workers up before the thread starts watching
    killer = threading.Thread(target=kill_when_running)
    killer.start()
    try:
        agent.learn(8 * config.batch_size, run_dir=tmp_path)
    finally:
        killer.join()
        agent.close()
    rows = updates_in(tmp_path)
    assert [r["time/updates"] for r in rows] == list(range(1, 9))
    assert rows[-1]["sampler/worker_restarts"] >= 1
    assert len(killed) == 1 and sampler.pids[0] != killed[0]


def test_a_worker_that_cannot_restart_is_replaced() -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(CONFIG.batch_size)
        sampler = sampler_of(agent)
        first_pid = sampler.pids[1]
        ray.kill(sampler.workers[1], no_restart=True)
        agent.learn(until=3 * CONFIG.batch_size)
        assert agent.num_updates == 3
        assert sampler.restarts == 1
        assert sampler.pids[1] != first_pid
    finally:
        agent.close()


def test_resume_continues_with_new_episodes(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(2 * CONFIG.batch_size, run_dir=tmp_path)
        episodes = sampler_of(agent).stats.episodes
    finally:
        agent.close()
    resumed = TRPO.load(tmp_path / "checkpoint", trust_run_sampler=True)  # the run's own sampler: Ray
    try:
        assert resumed.num_updates == 2
        resumed.learn(until=4 * CONFIG.batch_size, run_dir=tmp_path)
        sampler = sampler_of(resumed)
        assert sampler.stats.episodes > episodes  # counted on from the checkpoint
    finally:
        resumed.close()
    assert [r["time/updates"] for r in updates_in(tmp_path)] == [1, 2, 3, 4]
    np.testing.assert_array_equal(resumed.reward_scaler.returns.shape, (4,))
