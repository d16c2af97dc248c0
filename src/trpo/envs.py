"""Environment creation and (pickle-free) description of spaces for saved models."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from trpo.errors import UserError

EnvFactory = Callable[[], gym.Env]


def check_env_id(env_id: str) -> None:
    """Raise `UserError` if `env_id` is not a registered Gymnasium environment."""
    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise UserError(
            f'unknown environment id {env_id!r}: {exc} (list ids with `python -c "import gymnasium; '
            'gymnasium.pprint_registry()"`; MuJoCo ids need `pip install gymnasium[mujoco]`)'
        ) from None


# Warnings MuJoCo >= 4 prints each time Gymnasium's own MuJoCo models are compiled: not the user's to fix.
MUJOCO_ASSET_NOISE = ("compiler attribute 'settotalmass' is deprecated",)


def mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler in trpo's processes: to stderr, without the known asset noise."""
    if not message.startswith(MUJOCO_ASSET_NOISE):
        print(f"MuJoCo warning: {message}", file=sys.stderr)


def _route_mujoco_warnings(env_id: str) -> None:
    """Install `mujoco_warning` (unless the user installed a handler) before making a MuJoCo env."""
    if "mujoco" not in str(gym.spec(env_id).entry_point):
        return
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(mujoco_warning)


def _make_registered(env_id: str, **kwargs: Any) -> gym.Env:
    try:
        _route_mujoco_warnings(env_id)
        return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise UserError(f"environment {env_id!r} needs a missing package: {exc}") from None


def env_factory(env: str | EnvFactory, **kwargs: Any) -> tuple[EnvFactory, str | None]:
    """A picklable function that creates one environment, and the env id when there is one."""
    if isinstance(env, str):
        check_env_id(env)
        return functools.partial(_make_registered, env, **kwargs), env
    if callable(env):
        return env, None
    raise UserError(f"env must be a Gymnasium environment id or a function returning an environment, got {env!r}")


def make_vector_env(factory: EnvFactory, n_envs: int, mode: str) -> gym.vector.VectorEnv:
    """`n_envs` copies in a vector env that autoresets in the same step (final obs in info).

    copy=False: step() returns the vector env's own observation buffer (5% faster on 16 HalfCheetah
    envs); the collector consumes each step's observations before the next step overwrites them.
    """
    vector_cls = AsyncVectorEnv if mode == "async" else SyncVectorEnv
    return vector_cls([factory] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP, copy=False)


def probe_spaces(factory: EnvFactory) -> tuple[spaces.Space, spaces.Space]:
    """Observation and action space of the environment `factory` makes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = factory()
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def space_to_json(space: spaces.Space, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A JSON description of a supported space plus its bounds as tensors (no pickle)."""
    if isinstance(space, spaces.Box):
        desc = {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
        bounds = {
            f"{prefix}.low": torch.from_numpy(np.array(space.low)),
            f"{prefix}.high": torch.from_numpy(np.array(space.high)),
        }
        return desc, bounds
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}, {}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}, {}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": int(np.prod(space.shape))}, {}
    raise UserError(f"cannot save a model for space {space}")


def space_from_json(desc: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> spaces.Space:
    kind = desc.get("type")
    if kind == "Box":
        low = tensors[f"{prefix}.low"].numpy()
        high = tensors[f"{prefix}.high"].numpy()
        return spaces.Box(low=low, high=high, shape=tuple(desc["shape"]), dtype=np.dtype(desc["dtype"]))
    if kind == "Discrete":
        return spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.array(desc["nvec"], dtype=np.int64))
    if kind == "MultiBinary":
        return spaces.MultiBinary(int(desc["n"]))
    raise ValueError(f"unknown space type {kind!r}")
