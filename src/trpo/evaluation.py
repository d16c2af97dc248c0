"""Evaluating a policy: episodes on a fresh environment with frozen normalisation and raw rewards."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trpo.algorithm import TRPO


def evaluate(
    agent: TRPO, episodes: int = 10, deterministic: bool = True, seed: int | None = None
) -> dict[str, float | int | list[float]]:
    """Run `episodes` full episodes; return mean/std of the undiscounted, unscaled returns.

    Episodes are seeded `seed, seed + 1, ...` (default: the run's seed + 1000) so evaluation is repeatable.
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    base_seed = agent.config.seed + 1000 if seed is None else seed
    env = agent.env_fn()
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=base_seed + i)
            total, length, done = 0.0, 0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent.predict(obs, deterministic=deterministic))
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)) if len(returns) > 1 else 0.0,
        "episodes": episodes,
        "mean_length": float(np.mean(lengths)) if lengths else math.nan,
        "returns": returns,
    }
