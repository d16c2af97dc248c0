"""Evaluating a policy: episodes on a fresh environment with frozen normalisation and raw rewards."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from trpo.sampling.contract import action_mask, checked_env
from trpo.sampling.costs import COST_KEY
from trpo.sampling.envs import check_spaces

if TYPE_CHECKING:
    import gymnasium as gym

    from trpo.algos.learner import Learner


DEFAULT_MAX_EPISODE_STEPS = 100_000
"""The step cap of an evaluation episode on an environment without a time limit (and no
eval_max_episode_steps): an environment that never ends cannot hang `trpo train` or `trpo eval`."""
_warned: set[str] = set()

EVAL_STREAM = 0x6576616C
"""Second word of the SeedSequence whose output seeds a run's evaluation episodes (the run seed is the first)."""


def episode_seeds(run_seed: int, episodes: int, first: int | None = None) -> list[int]:
    """Reset seeds of `episodes` evaluation episodes: `first, first + 1, ...` when `first` is given (an explicit
    --seed), else the run's own evaluation stream, the 32-bit words of SeedSequence((run_seed, EVAL_STREAM)).

    Runs with different seeds evaluate on different start states: with the former `run seed + 1000 + i`,
    seeds s and s + 1 shared 9 of their 10 episodes, so a 5-seed mean saw 14 start states instead of 50
    (on Pendulum-v1 the start state moves a near-optimal policy's 10-episode return from -146 to -200).
    A run's first k seeds are the same whatever the episode count; the words never repeat a training
    env's seed pattern (run seed + i) except by chance.
    """
    if first is not None:
        return [first + i for i in range(episodes)]
    words = np.random.SeedSequence((run_seed, EVAL_STREAM)).generate_state(episodes, dtype=np.uint32)
    return [int(w) for w in words]


def episode_step_cap(agent: Learner, env: gym.Env) -> int:
    """Steps after which an evaluation episode is cut: config.eval_max_episode_steps, else the environment's
    time limit (its spec's max_episode_steps or a TimeLimit wrapper), else DEFAULT_MAX_EPISODE_STEPS with a
    warning line (once per environment and process)."""
    configured = int(getattr(agent.config, "eval_max_episode_steps", 0) or 0)
    if configured > 0:
        return configured
    limit = _time_limit(env)
    if limit is not None:
        return limit
    name = agent.env_id or type(env.unwrapped).__name__
    if name not in _warned:
        _warned.add(name)
        print(
            f"warning: {name} has no time limit; evaluation episodes stop after {DEFAULT_MAX_EPISODE_STEPS:,} steps "
            "(set eval_max_episode_steps, or wrap it: --wrapper gymnasium.wrappers:TimeLimit='{max_episode_steps: N}')",
            file=sys.stderr,
        )
    return DEFAULT_MAX_EPISODE_STEPS


def _time_limit(env: gym.Env) -> int | None:
    from gymnasium.wrappers import TimeLimit

    layer: Any = env
    while layer is not None:
        if isinstance(layer, TimeLimit):
            return int(layer._max_episode_steps)
        layer = getattr(layer, "env", None)
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    return int(steps) if isinstance(steps, int) and steps > 0 else None


def play_episode(
    agent: Learner,
    env: gym.Env,
    seed: int,
    deterministic: bool = True,
    after_step: Callable[[], None] | None = None,
    costs: list[float] | None = None,
    max_steps: int | None = None,
) -> tuple[float, int]:
    """One episode from `env.reset(seed=seed)` with `agent.predict`: its undiscounted return and length.
    `after_step` (e.g. grabbing a video frame) is called after the reset and after every step. When the environment
    reports costs (info["cost"]), the episode's undiscounted cost is appended to `costs`. The episode is cut after
    `max_steps` steps (default: `episode_step_cap`). The environment's spaces must be the model's (`check_spaces`)."""
    check_spaces((agent.observation_space, agent.action_space), (env.observation_space, env.action_space),
                 agent.env_id or "the environment")  # fmt: skip
    cap = episode_step_cap(agent, env) if max_steps is None else max_steps
    obs, info = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    cost: float | None = None
    if after_step is not None:
        after_step()
    while not done and length < cap:
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
        if COST_KEY in info:
            cost = (cost or 0.0) + float(info[COST_KEY])
    if costs is not None and cost is not None:
        costs.append(cost)
    return total, length


def evaluate(
    agent: Learner, episodes: int = 10, deterministic: bool = True, seed: int | None = None, env: gym.Env | None = None
) -> dict[str, float | int | list[float]]:
    """Run `episodes` full episodes; return mean/std of the undiscounted, unscaled returns (and, when the environment
    reports costs, `mean_cost`/`std_cost`/`costs` of the undiscounted episode costs).

    Episodes are seeded `seed, seed + 1, ...`, by default with the run's own evaluation stream (`episode_seeds`),
    so evaluation is repeatable and runs with different seeds see different start states.
    They run on a new environment from the agent's (closed afterwards), or on `env` (left open).
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    seeds = episode_seeds(agent.config.seed, episodes, seed)
    own = env is None
    env = checked_env(agent.env_fn, 0) if env is None else env
    returns: list[float] = []
    lengths: list[int] = []
    costs: list[float] = []
    try:
        for episode_seed in seeds:
            total, length = play_episode(agent, env, episode_seed, deterministic, costs=costs)
            returns.append(total)
            lengths.append(length)
    finally:
        if own:
            env.close()
    result: dict[str, float | int | list[float]] = {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)) if len(returns) > 1 else 0.0,
        "episodes": episodes,
        "mean_length": float(np.mean(lengths)) if lengths else math.nan,
        "returns": returns,
    }
    if costs:  # the environment reports costs: their undiscounted sums per episode
        result.update(mean_cost=float(np.mean(costs)), std_cost=float(np.std(costs)), costs=costs)
    return result
