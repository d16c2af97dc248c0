"""`sampler=envpool`: EnvPool's C++ environments behind the in-process sampler (opt-in).

EnvPool (`pip install envpool`) steps a batch of environments in C++ threads, with no Python per
environment step; it has Gymnasium's MuJoCo v5, classic-control and Box2D ids among others. This module
adapts its Gymnasium interface to what `SyncSampler` reads from a Gymnasium vector env:

- **Autoreset in the same step.** EnvPool resets an environment at the step *after* the one that
  ended its episode (that step returns the first observation with reward 0). Here an environment whose
  episode ended is reset at once (`reset(env_id=...)`), its last observation goes to
  `info["final_obs"]` (the truncation bootstrap reads it) and the step returns the new episode's first
  observation, as `AutoresetMode.SAME_STEP` does.
- **The Gymnasium env's spaces.** Actions and observations are cast to the dtypes of the spaces the
  Gymnasium environment declares (EnvPool uses float64 Boxes where MuJoCo v5 declares float32 actions),
  so the learner, evaluation (on Gymnasium's environments) and saved models see one set of spaces.
- **Seeds.** EnvPool fixes seeds when the pool is made; `reset(seed=s)` makes a new pool seeded `s`.

Only plain registered ids (no `module:`, no wrappers) that EnvPool knows can run here; env kwargs are
passed to EnvPool, which refuses ones it does not have. Environment `i` is seeded by EnvPool from the pool's
seed, so the random streams differ from Gymnasium's (the same algorithm; BENCHMARKS.md compares returns).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from trpo.errors import ConfigError, UserError
from trpo.sampling.env_spec import EnvSpec


def import_envpool() -> Any:
    try:
        return importlib.import_module("envpool")
    except ImportError:
        raise ConfigError(
            "sampler=envpool needs EnvPool, which is not installed: pip install 'trpo[envpool]'"
        ) from None


def check_envpool_spec(spec: EnvSpec | None) -> str:
    """The EnvPool id for `spec`, or a one-line ConfigError saying why EnvPool cannot run it."""
    if spec is None or spec.module is not None or spec.wrappers:
        what = "an environment without an id" if spec is None else f"{spec.id!r}"
        extra = "" if spec is None or not spec.wrappers else " with wrappers"
        raise ConfigError(
            f"sampler=envpool runs EnvPool's own registered environments by id, not {what}{extra}; "
            "use sampler=sync or process for it"
        )
    known = set(import_envpool().list_all_envs())
    if spec.id not in known:
        raise ConfigError(
            f"sampler=envpool: EnvPool has no environment {spec.id!r}; use sampler=sync or process for it"
        )
    return spec.id


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """EnvPool's batch of `n_envs` environments as a Gymnasium vector env that autoresets in the same step."""

    def __init__(
        self,
        spec: EnvSpec,
        n_envs: int,
        single_spaces: tuple[spaces.Space, spaces.Space],
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        self.env_id = check_envpool_spec(spec)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
        self.kwargs = dict(spec.kwargs)
        self.num_envs, self.num_threads = n_envs, num_threads
        self.single_observation_space, self.single_action_space = single_spaces
        if not isinstance(self.single_observation_space, spaces.Box) or not isinstance(
            self.single_action_space, (spaces.Box, spaces.Discrete)
        ):
            raise ConfigError("sampler=envpool supports Box observations and Box or Discrete actions")
        self.observation_space = batch_space(self.single_observation_space, n_envs)
        self.action_space = batch_space(self.single_action_space, n_envs)
        self.seed = seed
        self.pool = self._make(seed)

    def _make(self, seed: int) -> Any:
        envpool = import_envpool()
        try:
            with warnings.catch_warnings():  # EnvPool builds float32 Boxes from float64 bounds: Gymnasium's warning
                warnings.simplefilter("ignore", UserWarning)
                pool = envpool.make_gymnasium(
                    self.env_id, num_envs=self.num_envs, seed=int(seed), num_threads=self.num_threads, **self.kwargs
                )
        except Exception as exc:  # EnvPool's own errors (unknown kwargs, bad values) are the user's: one line
            raise UserError(f"EnvPool cannot make {self.env_id} with env kwargs {self.kwargs}: {exc}") from None
        self._pool_action_dtype = pool.action_space.dtype
        if pool.observation_space.shape != self.single_observation_space.shape:
            raise ConfigError(
                f"EnvPool's {self.env_id} observes shape {pool.observation_space.shape}, Gymnasium's "
                f"{self.single_observation_space.shape}: use sampler=sync or process"
            )
        return pool

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=self.single_observation_space.dtype)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is not None:
            first = int(seed if isinstance(seed, int) else seed[0])
            if first != self.seed:
                self.pool.close()
                self.seed, self.pool = first, self._make(first)
        obs, _ = self.pool.reset()
        return self._obs(obs), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, _ = self.pool.step(np.asarray(actions, dtype=self._pool_action_dtype))
        obs = self._obs(obs)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        info: dict[str, Any] = {}
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            final = np.empty(self.num_envs, dtype=object)
            final[done] = list(obs[done].copy())
            first, reset_info = self.pool.reset(env_id=done)
            obs[np.asarray(reset_info.get("env_id", done))] = self._obs(first)
            info = {"final_obs": final, "_final_obs": terminated | truncated}
        return obs, np.asarray(rewards, dtype=np.float64), terminated, truncated, info

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Only what the sampler asks a Gymnasium vector env: EnvPool's environments have no Python
        wrappers, hence no `action_masks` method."""
        if name == "has_wrapper_attr":
            return (False,) * self.num_envs
        raise ConfigError(f"sampler=envpool: EnvPool's environments have no Python attribute {name!r}")

    def close_extras(self, **kwargs: Any) -> None:
        self.pool.close()
