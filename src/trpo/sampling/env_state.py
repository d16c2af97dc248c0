"""Pickle-free capture and restore of environment state, so a resumed run continues bit for bit.

Supported: the wrappers `gymnasium.make` adds (TimeLimit, OrderEnforcing, PassiveEnvChecker) and trpo's
`ContractChecker` around classic-control environments (CartPole, Pendulum, MountainCar,
MountainCarContinuous, Acrobot, and their subclasses), Gymnasium's MuJoCo environments (the full integration state
of `mj_getState`) and environments that name their state in a class attribute `resume_fields` (attributes holding
numbers or NumPy arrays, e.g. trpo.examples.safe_envs'), plus the environment's NumPy generator. Any other wrapper
or environment returns None: its episodes restart on resume.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from trpo.sampling.contract import ContractChecker

# Wrapper type -> the attributes that make up its state (PassiveEnvChecker's only affect warnings).
WRAPPER_FIELDS: dict[type, tuple[str, ...]] = {
    ContractChecker: ("episode_step",),
    TimeLimit: ("_elapsed_steps",),
    OrderEnforcing: ("_has_reset",),
    PassiveEnvChecker: (),
}
CLASSIC_CONTROL = {
    "CartPoleEnv": ("steps_beyond_terminated",),
    "PendulumEnv": ("last_u",),
    "MountainCarEnv": (),
    "Continuous_MountainCarEnv": (),
    "AcrobotEnv": (),
}


def _mujoco_spec() -> Any:
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def _is_mujoco(env: gym.Env) -> bool:
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except (ImportError, gym.error.DependencyNotInstalled):  # mujoco not installed (gymnasium raises the latter)
        return False
    return isinstance(env, MujocoEnv)


def _classic_control(env: gym.Env) -> tuple[str, ...] | None:
    """The extra state attributes of a classic-control environment (or of a subclass of one), None for others."""
    for cls in type(env).__mro__:
        if cls.__name__ in CLASSIC_CONTROL and cls.__module__.startswith("gymnasium.envs.classic_control"):
            return CLASSIC_CONTROL[cls.__name__]
    return None


def _plain(value: Any) -> Any:
    """A JSON-safe copy: arrays become {"array": [...], "dtype": ...}; floats keep every bit (repr)."""
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"array", "dtype"}:
        return np.array(value["array"], dtype=np.dtype(value["dtype"]))
    return value


def capture(env: gym.Env) -> dict[str, Any] | None:
    """The state of `env` and its wrappers as plain JSON data, or None if it cannot be captured."""
    wrappers = []
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        fields = WRAPPER_FIELDS.get(type(layer))
        if fields is None:
            return None
        wrappers.append({name: _plain(getattr(layer, name)) for name in fields})
        layer = layer.env
    core: dict[str, Any]
    if _is_mujoco(layer):
        import mujoco

        spec = _mujoco_spec()
        state = np.empty(mujoco.mj_stateSize(layer.model, spec))
        mujoco.mj_getState(layer.model, layer.data, state, spec)
        core = {"mujoco": _plain(state)}
    elif (classic := _classic_control(layer)) is not None and getattr(layer, "state", None) is not None:
        core = {"state": _plain(np.asarray(layer.state)), **{k: _plain(getattr(layer, k, None)) for k in classic}}
    elif isinstance(getattr(type(layer), "resume_fields", None), tuple):
        core = {k: _plain(getattr(layer, k)) for k in type(layer).resume_fields}
    else:
        return None
    return {"wrappers": wrappers, "core": core, "np_random": layer.np_random.bit_generator.state}


def restore(env: gym.Env, state: dict[str, Any]) -> None:
    """Put `env` (made by the same factory) into a state returned by `capture`."""
    layer: Any = env
    for fields in state["wrappers"]:
        for name, value in fields.items():
            setattr(layer, name, _unplain(value))
        layer = layer.env
    core = state["core"]
    if "mujoco" in core:
        import mujoco

        mujoco.mj_setState(layer.model, layer.data, _unplain(core["mujoco"]), _mujoco_spec())
    else:
        for name, value in core.items():
            setattr(layer, name, _unplain(value))
    layer.np_random.bit_generator.state = state["np_random"]


def capture_all(envs: gym.vector.VectorEnv) -> list[dict[str, Any]] | None:
    """States of every sub-environment of an in-process vector env; None if any cannot be captured."""
    sub_envs = getattr(envs, "envs", None)
    if sub_envs is None:
        return None  # AsyncVectorEnv: the environments live in other processes
    states = [capture(env) for env in sub_envs]
    return None if any(s is None for s in states) else states  # type: ignore[return-value]


def restore_all(envs: gym.vector.VectorEnv, states: list[dict[str, Any]]) -> None:
    for env, state in zip(envs.envs, states, strict=True):  # type: ignore[attr-defined]
        restore(env, state)
