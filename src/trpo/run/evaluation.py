"""Evaluating a policy: episodes on a fresh environment with frozen normalisation and raw rewards."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from trpo.sampling.contract import action_mask, checked_env

if TYPE_CHECKING:
    import gymnasium as gym

    from trpo.algos.learner import Learner


def play_episode(
    agent: Learner, env: gym.Env, seed: int, deterministic: bool = True, after_step: Callable[[], None] | None = None
) -> tuple[float, int]:
    """One episode from `env.reset(seed=seed)` with `agent.predict`: its undiscounted return and length.
    `after_step` (e.g. grabbing a video frame) is called after the reset and after every step."""
    obs, info = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    if after_step is not None:
        after_step()
    while not done:
        mask = action_mask(env, info)  # legal actions, when the env declares them: only those are taken
        action = (
            agent.predict(obs, deterministic=deterministic)
            if mask is None
            else agent.predict(obs, deterministic=deterministic, action_masks=mask)
        )
        obs, reward, terminated, truncated, info = env.step(action)
        if after_step is not None:
            after_step()
        total += float(reward)
        length += 1
        done = terminated or truncated
    return total, length


def evaluate(
    agent: Learner, episodes: int = 10, deterministic: bool = True, seed: int | None = None, env: gym.Env | None = None
) -> dict[str, float | int | list[float]]:
    """Run `episodes` full episodes; return mean/std of the undiscounted, unscaled returns.

    Episodes are seeded `seed, seed + 1, ...` (default: the run's seed + 1000) so evaluation is repeatable.
    They run on a new environment from the agent's (closed afterwards), or on `env` (left open).
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    base_seed = agent.config.seed + 1000 if seed is None else seed
    own = env is None
    env = checked_env(agent.env_fn, 0) if env is None else env
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for i in range(episodes):
            total, length = play_episode(agent, env, base_seed + i, deterministic)
            returns.append(total)
            lengths.append(length)
    finally:
        if own:
            env.close()
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)) if len(returns) > 1 else 0.0,
        "episodes": episodes,
        "mean_length": float(np.mean(lengths)) if lengths else math.nan,
        "returns": returns,
    }
