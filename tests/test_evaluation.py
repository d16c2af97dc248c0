"""Evaluation: each episode is a different, repeatable episode (its own reset seed)."""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from probes import Endless
from trpo import TRPO, TRPOConfig, evaluate
from trpo.run.evaluation import EVAL_STREAM, episode_seeds

RESET_SEEDS: list[int | None] = []


class SeedRecorder(Endless):
    """Endless, recording the seed of every reset."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        RESET_SEEDS.append(seed)
        return super().reset(seed=seed, options=options)


def test_every_evaluation_episode_has_its_own_seed() -> None:
    agent = TRPO(SeedRecorder, TRPOConfig(n_envs=1, n_steps=16), seed=7)
    RESET_SEEDS.clear()
    evaluate(agent, episodes=4, seed=100)
    assert RESET_SEEDS == [100, 101, 102, 103]
    RESET_SEEDS.clear()
    evaluate(agent, episodes=3)  # default: the run's own evaluation seeds
    seen = list(RESET_SEEDS)
    assert seen == episode_seeds(7, 3)
    assert seen == [int(w) for w in np.random.SeedSequence((7, EVAL_STREAM)).generate_state(3)]


def test_runs_with_different_seeds_evaluate_on_different_start_states() -> None:
    """Neighbouring run seeds share no evaluation episode (with the former seed + 1000 + i, seeds s and s + 1
    shared 9 of 10), a run's first k episodes do not depend on the episode count, and an explicit first seed
    counts up from itself."""
    runs = [set(episode_seeds(s, 10)) for s in range(50)]
    assert all(len(r) == 10 for r in runs)
    assert len(set().union(*runs)) == 500
    assert episode_seeds(3, 100)[:10] == episode_seeds(3, 10)
    assert episode_seeds(3, 4, first=2**40) == [2**40, 2**40 + 1, 2**40 + 2, 2**40 + 3]
    assert episode_seeds(2**32 - 1, 2) != episode_seeds(0, 2)


def test_evaluation_episodes_differ_and_repeat() -> None:
    """Pendulum starts at a random angle: ten seeded episodes give ten returns, the same ones each time."""
    agent = TRPO("Pendulum-v1", TRPOConfig(n_envs=1, n_steps=16), seed=0)
    first = evaluate(agent, episodes=10)["returns"]
    assert len(set(first)) == 10  # type: ignore[arg-type]
    assert evaluate(agent, episodes=10)["returns"] == first


class Counting(gym.Env):
    """Reward t at step t (1, 2, ...); the episode ends after 2 + seed % 3 steps, so each seed has a known
    return: 3 (seed % 3 == 0), 6 (1), 10 (2)."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.limit = 0, 2 + (seed or 0) % 3
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.zeros(1, np.float32), float(self.t), self.t >= self.limit, False, {}


def test_evaluation_known_answer() -> None:
    agent = TRPO(Counting, TRPOConfig(n_envs=1, n_steps=16), seed=0)
    result = evaluate(agent, episodes=3, seed=30)  # seeds 30, 31, 32: returns 3, 6, 10; lengths 2, 3, 4
    assert result["returns"] == [3.0, 6.0, 10.0] and result["episodes"] == 3
    assert result["mean_return"] == pytest.approx(19 / 3) and result["mean_length"] == 3.0
    assert result["std_return"] == pytest.approx(float(np.std([3.0, 6.0, 10.0])))
    one = evaluate(agent, episodes=1, seed=31)
    assert one["returns"] == [6.0] and one["std_return"] == 0.0 and one["mean_length"] == 3.0
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(agent, episodes=0)


def test_evaluation_is_deterministic_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = TRPO(Counting, TRPOConfig(n_envs=1, n_steps=16), seed=0)
    calls: list[bool] = []
    predict = agent.predict

    def spy(obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        calls.append(deterministic)
        return predict(obs, deterministic=deterministic)

    monkeypatch.setattr(agent, "predict", spy)
    evaluate(agent, episodes=2)
    assert calls and all(calls)
    calls.clear()
    evaluate(agent, episodes=2, deterministic=False)
    assert calls and not any(calls)
    defaults = inspect.signature(evaluate).parameters
    assert defaults["episodes"].default == 10 and defaults["deterministic"].default is True  # unless told otherwise
