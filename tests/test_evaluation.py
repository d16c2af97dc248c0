"""Evaluation: each episode is a different, repeatable episode (its own reset seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from probes import Endless
from trpo import TRPO, TRPOConfig, evaluate

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
    evaluate(agent, episodes=3)  # default: the run's seed + 1000, + 1, ...
    assert RESET_SEEDS == [1007, 1008, 1009]


def test_evaluation_episodes_differ_and_repeat() -> None:
    """Pendulum starts at a random angle: ten seeded episodes give ten returns, the same ones each time."""
    agent = TRPO("Pendulum-v1", TRPOConfig(n_envs=1, n_steps=16), seed=0)
    first = evaluate(agent, episodes=10)["returns"]
    assert len(set(first)) == 10  # type: ignore[arg-type]
    assert evaluate(agent, episodes=10)["returns"] == first
