"""Per-step costs of constrained environments: where they come from and how they are read.

An environment reports the cost of a step in `info["cost"]` (Safety-Gymnasium's Gymnasium-adapter convention,
and `trpo.examples.safe_envs`'). An environment that does not can be given a cost function in Python with the
`CostFunction` wrapper, which writes `info["cost"]` itself:

    env = CostFunction(gymnasium.make("CartPole-v1"), lambda obs, action, reward, next_obs, info: abs(next_obs[0]) > 1)

or, from the command line, `--wrapper 'trpo.sampling.costs:CostFunction={"cost_fn": "mymodule:my_cost"}'`.

`step_costs` reads the costs of one step of a vector env that autoresets in the same step: an episode that ended at
this step reports its last step's info in `info["final_info"]` (the top-level info is then the next episode's reset
info), so the cost of an ended environment is read from there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from trpo.errors import UserError

__all__ = ["COST_KEY", "CostFunction", "step_costs"]

COST_KEY = "cost"
"""The info key of a step's cost."""

CostFn = Callable[[Any, Any, SupportsFloat, Any, dict[str, Any]], SupportsFloat]
"""cost_fn(obs, action, reward, next_obs, info) -> the step's cost."""


def _masked(info: dict[str, Any], n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(values [n], mask [n]) of info["cost"] in a vector env's info dict, None when absent."""
    if COST_KEY not in info:
        return None
    values = np.asarray(info[COST_KEY], dtype=np.float64).reshape(n)
    mask = np.asarray(info.get("_" + COST_KEY, np.ones(n, dtype=bool)), dtype=bool).reshape(n)
    return values, mask


def step_costs(info: dict[str, Any], ended: np.ndarray) -> np.ndarray | None:
    """The cost of each environment's step [n] (0 where an environment reported none), or None when no environment
    reported a cost at this step. Ended environments' costs come from `info["final_info"]`."""
    n = len(ended)
    found = False
    costs = np.zeros(n, dtype=np.float64)
    top = _masked(info, n)
    if top is not None:
        values, mask = top
        mask = mask & ~ended  # an ended env's top-level info is the reset info of its next episode
        costs[mask] = values[mask]
        found = bool(mask.any())
    final_info = info.get("final_info")
    if isinstance(final_info, dict):
        final = _masked(final_info, n)
        if final is not None:
            values, mask = final
            mask = mask & ended & np.asarray(info.get("_final_info", ended), dtype=bool).reshape(n)
            costs[mask] = values[mask]
            found = found or bool(mask.any())
    return costs if found else None


def _resolve(cost_fn: CostFn | str) -> CostFn:
    if callable(cost_fn):
        return cost_fn
    module_name, _, attribute = str(cost_fn).partition(":")
    if not module_name or not attribute:
        raise UserError(f"cost_fn must be a function or 'module:function' (got {cost_fn!r})")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cost_fn {cost_fn!r} cannot be imported: {exc}") from None
    if not callable(function):
        raise UserError(f"cost_fn {cost_fn!r} is not a function")
    return function


class CostFunction(gym.Wrapper[Any, Any, Any, Any]):
    """Adds `info["cost"] = float(cost_fn(obs, action, reward, next_obs, info))` to every step of `env`.

    `cost_fn` is a function or a 'module:function' string (so that the wrapper can be named in a config file or on
    the command line, and rebuilt from a checkpoint's env spec).
    """

    def __init__(self, env: gym.Env[Any, Any], cost_fn: CostFn | str) -> None:
        super().__init__(env)
        self.cost_fn = _resolve(cost_fn)
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        cost = float(self.cost_fn(self._obs, action, reward, next_obs, info))
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, {**info, COST_KEY: cost}
