"""The process sampler (`sampler=process`): local worker processes running whole rollouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from conftest import require
from test_samplers import assert_valid, updates_in
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main
from trpo.errors import ConfigError, NonFiniteEnvError, TrainingStopped
from trpo.sampling.processes import ProcessSampler
from trpo.sampling.workers import MAX_WORKER_FAILURES

# 2 workers x 2 envs of CartPole; small batches so that a test runs many updates in seconds
CONFIG = TRPOConfig(
    sampler="process", workers=2, n_envs=4, n_steps=128, gae_lambda=0.98, vf_epochs=10, vf_minibatch_size=128,
    eval_episodes=0,
)  # fmt: skip


def sampler_of(agent: TRPO) -> ProcessSampler:
    sampler = agent.start_sampler()
    assert isinstance(sampler, ProcessSampler)
    return sampler


def test_batches_are_valid_statistics_merged_and_the_run_learns(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        sampler = sampler_of(agent)
        assert len({p.pid for p in sampler.processes} | {os.getpid()}) == 3  # two worker processes
        batch = sampler.collect(0.99, 0.95)
        assert_valid(batch, 512, 4)
        # every observation the workers saw (2 x 2 reset observations, then 4 x 128 steps) is in the learner's
        assert agent.obs_normalizer.rms.count == 4 + 512
        assert agent.reward_scaler.rms.count == 512
        agent.learn(24 * 512, run_dir=tmp_path)
    finally:
        agent.close()
    assert all(p is None for p in sampler.processes)  # closed
    rows = updates_in(tmp_path)
    assert [r["sampler/policy_version"] for r in rows] == list(range(2, 26))
    assert rows[-1]["rollout/ep_return_mean"] > 100  # a random policy averages ~22


def test_same_seed_same_run() -> None:
    """The workers' streams depend on the run seed and the worker index only, not on timing."""
    returns = []
    for _ in range(2):
        agent = TRPO("CartPole-v1", CONFIG, seed=3)
        try:
            agent.learn(3 * CONFIG.batch_size)
            returns.append(list(sampler_of(agent).stats.returns))
        finally:
            agent.close()
    assert returns[0] == returns[1] and len(returns[0]) > 10


def test_a_killed_worker_is_replaced_and_training_goes_on_without_a_gap(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(2 * CONFIG.batch_size, run_dir=tmp_path)
        sampler = sampler_of(agent)
        killed = sampler.pids[1]
        os.kill(killed, signal.SIGKILL)
        agent.learn(until=4 * CONFIG.batch_size, run_dir=tmp_path)
        assert sampler.pids[1] != killed and sampler.restarts == 1
    finally:
        agent.close()
    rows = updates_in(tmp_path)
    assert [r["time/updates"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["sampler/worker_restarts"] == 1


def test_a_replacement_that_cannot_start_is_reported_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 17, finding 14: a replacement that dies while starting counts as a death (MAX_WORKER_FAILURES in
    all, as documented), and training stops with a checkpoint."""
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(CONFIG.batch_size, run_dir=tmp_path)
        sampler = sampler_of(agent)

        def start_a_process_that_exits(k: int) -> None:
            parent, child = sampler.context.Pipe()
            process = sampler.context.Process(target=os._exit, args=(3,), daemon=True)
            process.start()
            child.close()
            sampler.processes[k], sampler.conns[k] = process, parent

        monkeypatch.setattr(sampler, "_start", start_a_process_that_exits)
        os.kill(sampler.pids[1], signal.SIGKILL)
        (tmp_path / "checkpoint").rename(tmp_path / "first")
        with pytest.raises(TrainingStopped, match=r"worker 1 died .* its replacement exited \(code 3\)") as info:
            agent.learn(2 * CONFIG.batch_size, run_dir=tmp_path)
        assert "__main__" not in str(info.value)  # not the start-up advice: the first start worked
        assert f"died {MAX_WORKER_FAILURES} times" in str(info.value)
        assert TRPO.load(tmp_path).num_updates == 1  # checkpointed before stopping
    finally:
        agent.close()


def test_resume_continues_with_new_episodes(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(2 * CONFIG.batch_size, run_dir=tmp_path)
        episodes = sampler_of(agent).stats.episodes
    finally:
        agent.close()
    assert TRPO.load(tmp_path / "checkpoint").config.sampler == "sync"  # a run directory never picks the sampler
    resumed = TRPO.load(tmp_path / "checkpoint", trust_run_sampler=True)
    try:
        assert resumed.config.sampler == "process" and resumed.num_updates == 2
        resumed.learn(until=4 * CONFIG.batch_size, run_dir=tmp_path)
        assert sampler_of(resumed).stats.episodes > episodes  # counted on from the checkpoint
    finally:
        resumed.close()
    assert [r["time/updates"] for r in updates_in(tmp_path)] == [1, 2, 3, 4]


class NaNAfter(gym.Wrapper):
    """Observations become NaN after `steps` steps."""

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        self.left = steps

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.left -= 1
        return (obs * np.nan if self.left < 0 else obs), reward, terminated, truncated, info


def test_a_workers_non_finite_observation_names_the_run_wide_env_index() -> None:
    steps = 40
    # a closure: the factory reaches the workers by cloudpickle
    agent = TRPO(lambda: NaNAfter(gym.make("CartPole-v1"), steps), CONFIG, seed=0)
    try:
        with pytest.raises(NonFiniteEnvError, match="sampler worker 0") as info:
            agent.learn(CONFIG.batch_size)
        assert info.value.env_index in (0, 1)  # worker 0 holds envs 0 and 1 (each had its own wrapper)
    finally:
        agent.close()


class NaNOnce(gym.Wrapper):
    """The reward of step `at` (counted over the env's life) is NaN; every other step is normal."""

    def __init__(self, env: gym.Env, at: int) -> None:
        super().__init__(env)
        self.t, self.at = 0, at

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, (float("nan") if self.t == self.at else reward), terminated, truncated, info


def test_skip_batch_after_a_workers_non_finite_reward_goes_on_with_fresh_batches() -> None:
    """Both workers report the NaN of the first batch; the second report must not be taken for a later batch."""
    config = CONFIG.replace(on_nonfinite="skip_batch")
    agent = TRPO(lambda: NaNOnce(gym.make("CartPole-v1"), 40), config, seed=0)
    try:
        agent.learn(3 * config.batch_size)
        assert agent.skipped_batches == 1 and agent.num_updates == 3  # skipped batches count no steps
    finally:
        agent.close()


def test_cli_trains_with_worker_processes_and_bad_splits_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["train", "CartPole-v1", "--sampler", "process", "--workers", "2", "--n-envs", "4", "--quiet"]
    assert main([*args, "--total-steps", "1024", "--run-dir", str(run)]) == 0
    assert updates_in(run)[-1]["sampler/policy_version"] == 2
    with pytest.raises(ConfigError, match="n_envs must be a multiple of workers with sampler=process"):
        TRPOConfig(sampler="process", n_envs=5, workers=2).validate()
    capsys.readouterr()
    assert main([*args[:-3], "--n-envs", "5", "--quiet", "--run-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()


def test_a_script_without_a_main_guard_gets_told_why(tmp_path: Path) -> None:
    """Workers are spawned and import the main module: without `if __name__ == '__main__':` they cannot start."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            from trpo import TRPO, TRPOConfig
            from trpo.errors import TrainingStopped
            try:
                TRPO("CartPole-v1", TRPOConfig(sampler="process", n_envs=2, n_steps=64), seed=0).learn(128)
            except TrainingStopped as exc:
                print("STOPPED:", exc)
            """
        )
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "STOPPED: sampler worker 0 exited" in result.stdout
    assert "if __name__ == '__main__':" in result.stdout


def test_mujoco_presets_sample_in_worker_processes(tmp_path: Path) -> None:
    """Hopper-v5's preset: 2 worker processes of 8 MuJoCo envs each, 4096 steps per update (mujoco extra)."""
    require("mujoco", "mujoco")
    run = tmp_path / "run"
    assert main(["train", "Hopper-v5", "--total-steps", "8192", "--quiet", "--run-dir", str(run)]) == 0
    config = (run / "config.yaml").read_text()
    assert "sampler: process" in config and "workers: 2" in config
    rows = updates_in(run)
    assert [r["sampler/policy_version"] for r in rows] == [1, 2]
    assert rows[-1]["sampler/worker_restarts"] == 0


def _parameters(agent: TRPO) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in [*agent.actor.parameters(), *agent.critic.parameters()]]


def test_overlapping_the_critic_fit_with_the_next_collection_is_the_same_algorithm() -> None:
    """With overlap_critic_fit the workers collect batch k+1 while the learner fits the critic on batch k:
    the same networks bit for bit, also across a stop (a callback) and a second learn() call, which takes
    the batch collected before the stop."""
    runs = []
    for overlap in (False, True):
        agent = TRPO("CartPole-v1", CONFIG.replace(overlap_critic_fit=overlap), seed=5)
        try:
            agent.learn(4 * CONFIG.batch_size, callback=lambda a, stats: a.num_updates < 2)  # stops after 2 updates
            assert agent.num_updates == 2
            agent.learn(until=5 * CONFIG.batch_size)
            sampler = sampler_of(agent)
            runs.append((_parameters(agent), list(sampler.stats.returns), agent.obs_normalizer.rms.count))
            # updates 1-4 started the next collection early (the one of update 2 was taken by the second
            # learn()), update 5 did not: learn() ended there
            assert (sampler.prefetched, sampler.prefetch_discarded) == ((4, 0) if overlap else (0, 0))
        finally:
            agent.close()
    (params_a, returns_a, count_a), (params_b, returns_b, count_b) = runs
    assert all(np.array_equal(a, b) for a, b in zip(params_a, params_b, strict=True))
    assert returns_a == returns_b and count_a == count_b


def test_a_prefetched_batch_whose_policy_changed_is_booked_and_replaced() -> None:
    """A callback that edits the actor after an update: the batch the workers collected with the actor
    before the edit is not trained on; its observations and episodes are still counted."""
    import torch

    def nudge(agent: TRPO, stats: dict[str, float]) -> bool:
        with torch.no_grad():
            next(agent.actor.parameters()).add_(1e-3)
        return True

    agent = TRPO("CartPole-v1", CONFIG, seed=0)
    try:
        agent.learn(4 * CONFIG.batch_size, callback=nudge)
        sampler = sampler_of(agent)
        assert sampler.prefetched == 3 and sampler.prefetch_discarded == 3
        # 4 used batches and 3 dropped ones of 512 observations, plus the first reset's 4
        assert agent.obs_normalizer.rms.count == 4 + 7 * 512
        assert sampler.version == 7
    finally:
        agent.close()
