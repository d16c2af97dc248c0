"""`ContractChecker`: the wrapper around every training environment that turns a broken Gymnasium contract
(an observation of the wrong shape or dtype, None, a reward that is not a real number, a non-bool
terminated/truncated, an info that is not a dict) into one `EnvContractError` naming the environment, the
step, what was expected and what came, before the vector env batches (and silently casts) the values.

The check of a valid step is a handful of `type(x) is ...` and tuple comparisons (no per-element work).
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Iterator
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trpo.errors import EnvContractError

REAL_TYPES = frozenset({float, int, np.float64, np.float32, np.int64, np.int32})
BOOL_TYPES = frozenset({bool, np.bool_})


def _is_real(value: Any) -> bool:
    """A real number: Python or NumPy int/float (not bool), or a 0-d real array."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _shown(value: Any) -> str:
    """A returned value as a message names it: shape and dtype of an array, else its repr and type."""
    if isinstance(value, np.ndarray):
        return f"of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{text[:40] + '...' if len(text) > 40 else text} of type {type(value).__name__}"


class ContractChecker(gym.Wrapper):
    """Checks what `reset` and `step` return against the Gymnasium API and the observation space.

    Gymnasium's own checker (PassiveEnvChecker, added by gymnasium.make) warns about the first reset and
    step; those warnings are held back while this check runs, and dropped when it fails, so that a
    broken environment gives one error line.
    """

    def __init__(self, env: gym.Env, index: int) -> None:
        super().__init__(env)
        space = env.observation_space
        self.index = index
        self.episode_step = 0
        self._box = isinstance(space, spaces.Box)
        self._shape, self._dtype = (space.shape, space.dtype) if self._box else ((), None)
        self._first_calls = 2  # the first reset and step: Gymnasium's checker may warn

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        with self._held_warnings():
            obs, info = self.env.reset(**kwargs)
            self.episode_step = 0
            self._check_obs(obs, "reset()")
            if not isinstance(info, dict):
                self._fail(f"reset() returned an info {_shown(info)}, expected a dict")
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._first_calls:
            with self._held_warnings():
                return self._step(action)
        return self._step(action)

    def _step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_step += 1
        if not (
            type(obs) is np.ndarray
            and obs.shape == self._shape
            and obs.dtype == self._dtype
            and type(reward) in REAL_TYPES
            and type(terminated) in BOOL_TYPES
            and type(truncated) in BOOL_TYPES
            and type(info) is dict
        ):
            self._check_step(obs, reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    @contextlib.contextmanager
    def _held_warnings(self) -> Iterator[None]:
        """Record the warnings of a call; re-issue them if the call passes the checks."""
        if not self._first_calls:
            yield
            return
        self._first_calls -= 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _check_step(self, obs: Any, reward: Any, terminated: Any, truncated: Any, info: Any) -> None:
        """The slow path (something was unusual): raise for the first real violation, if any."""
        self._check_obs(obs, "step()")
        if not _is_real(reward):
            self._fail(f"step() returned a reward {_shown(reward)}, expected a real number (float or int)")
        for name, flag in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(flag, (bool, np.bool_)):
                self._fail(f"step() returned {name} = {_shown(flag)}, expected a bool")
        if not isinstance(info, dict):
            self._fail(f"step() returned an info {_shown(info)}, expected a dict")

    def _check_obs(self, obs: Any, where: str) -> None:
        if not self._box:
            return
        expected = f"shape {self._shape} and dtype {self._dtype} ({self.env.observation_space})"
        if not isinstance(obs, np.ndarray) or obs.shape != self._shape or obs.dtype != self._dtype:
            kind = "a NumPy array of " if not isinstance(obs, np.ndarray) else ""
            cast = f" (e.g. obs.astype(np.{self._dtype}))" if getattr(obs, "shape", None) == self._shape else ""
            self._fail(f"{where} returned an observation {_shown(obs)}, expected {kind}{expected}{cast}")

    def _fail(self, problem: str) -> None:
        raise EnvContractError(problem, env_index=self.index, episode_step=self.episode_step)


def checked_env(factory: Any, index: int) -> gym.Env:
    """`factory()` wrapped in a `ContractChecker` for sub-environment `index` (picklable with `factory`)."""
    return ContractChecker(factory(), index)


def action_mask(env: gym.Env, info: dict[str, Any]) -> np.ndarray | None:
    """The legal actions of `env` in its current state, when it declares them: `info["action_mask"]`, or
    its `action_masks()` method (sb3-contrib MaskablePPO's convention); None otherwise."""
    if "action_mask" in info:
        return np.asarray(info["action_mask"], dtype=bool)
    if env.has_wrapper_attr("action_masks"):
        return np.asarray(env.get_wrapper_attr("action_masks")(), dtype=bool)
    return None
