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

from trpo.errors import UserError
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


ARRAY_DTYPES = frozenset({"float64", "float32", "int64", "int32", "bool"})
WHERE = "the checkpoint's state.json: collector.envs"


def _refuse(where: str, message: str) -> UserError:
    return UserError(f"{WHERE}{where}: {message}; the checkpoint cannot be resumed")


def _unplain(value: Any, where: str = "") -> Any:
    """The value `_plain` wrote: an array from {"array": [...], "dtype": ...} (numeric dtypes only), or a
    plain None, bool, int or finite float; anything else is refused."""
    if isinstance(value, dict):
        if set(value) != {"array", "dtype"} or value["dtype"] not in ARRAY_DTYPES:
            raise _refuse(
                where, f"an array must be {{array, dtype}} with dtype one of {', '.join(sorted(ARRAY_DTYPES))}"
            )
        try:
            array = np.array(value["array"], dtype=np.dtype(value["dtype"]))
        except (TypeError, ValueError, OverflowError) as exc:
            raise _refuse(where, f"not an array of {value['dtype']} ({str(exc)[:100]})") from None
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise _refuse(where, "holds NaN or infinite values")
        return array
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float) and np.isfinite(value):
        return value
    raise _refuse(where, f"must be null, a boolean, a number or an array (got {type(value).__name__})")


def _like(current: Any, new: Any, where: str) -> Any:
    """`new` if it has the kind of value `current` has (an array of the same shape, an int, a bool, a
    float, or None where the attribute may be unset); refused otherwise."""
    if isinstance(current, np.ndarray) or isinstance(new, np.ndarray):
        shape = np.shape(current)
        if not isinstance(new, np.ndarray) or new.shape != shape:
            raise _refuse(where, f"must be an array of shape {list(shape)} like the environment's")
        return new
    if new is None or current is None:
        return new
    if isinstance(current, bool) != isinstance(new, bool):
        raise _refuse(where, f"must be {'true or false' if isinstance(current, bool) else 'a number'}")
    if isinstance(current, (int, np.integer)) and not isinstance(new, int):
        raise _refuse(where, "must be an integer")
    if isinstance(new, int) and not isinstance(new, bool) and new < 0:
        raise _refuse(where, "must be >= 0")
    return new


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


def restore(env: gym.Env, state: Any, where: str = "") -> None:
    """Put `env` (made by the same factory, just reset) into a state returned by `capture`.

    Only the attributes `capture` saves for each wrapper and environment type are set (WRAPPER_FIELDS,
    CLASSIC_CONTROL, the MuJoCo state), each only with a value of the kind and shape the environment has;
    anything else is refused (`UserError`, one line naming the entry)."""
    if not isinstance(state, dict) or set(state) != {"wrappers", "core", "np_random"}:
        raise _refuse(where, "must be an object with wrappers, core and np_random")
    layers: list[Any] = []
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        layers.append(layer)
        layer = layer.env
    wrappers = state["wrappers"]
    if not isinstance(wrappers, list) or len(wrappers) != len(layers):
        raise _refuse(f"{where}.wrappers", f"must list the {len(layers)} wrappers of the environment")
    updates: list[tuple[Any, str, Any]] = []
    for j, (wrapper, fields) in enumerate(zip(layers, wrappers, strict=True)):
        allowed = WRAPPER_FIELDS.get(type(wrapper))
        if allowed is None or not isinstance(fields, dict) or set(fields) != set(allowed):
            raise _refuse(
                f"{where}.wrappers[{j}]", f"must hold exactly {list(allowed or ())} for {type(wrapper).__name__}"
            )
        for name, value in fields.items():
            at = f"{where}.wrappers[{j}].{name}"
            updates.append((wrapper, name, _like(getattr(wrapper, name), _unplain(value, at), at)))
    core = state["core"]
    if not isinstance(core, dict):
        raise _refuse(f"{where}.core", "must be an object")
    mujoco_state = None
    if _is_mujoco(layer):
        import mujoco

        size = mujoco.mj_stateSize(layer.model, _mujoco_spec())
        if set(core) != {"mujoco"}:
            raise _refuse(f"{where}.core", "must hold exactly the MuJoCo state ('mujoco')")
        mujoco_state = _like(np.empty(size), _unplain(core["mujoco"], f"{where}.core.mujoco"), f"{where}.core.mujoco")
    else:
        classic = _classic_control(layer)
        own = getattr(type(layer), "resume_fields", None)
        if classic is not None:
            names, required = {"state", *classic}, {"state"}
        elif isinstance(own, tuple):
            names, required = set(own), set(own)
        else:
            raise _refuse(f"{where}.core", f"{type(layer).__name__}'s state cannot be restored")
        if not set(core) <= names or not required <= set(core):
            raise _refuse(f"{where}.core", f"must hold exactly {sorted(names)} for {type(layer).__name__}")
        for name, value in core.items():
            at = f"{where}.core.{name}"
            current = np.asarray(layer.state) if name == "state" and classic is not None else getattr(layer, name, None)
            updates.append((layer, name, _like(current, _unplain(value, at), at)))
    generator = layer.np_random.bit_generator
    saved = state["np_random"]
    if not isinstance(saved, dict) or saved.get("bit_generator") != generator.state["bit_generator"]:
        raise _refuse(f"{where}.np_random", f"must be the state of a {generator.state['bit_generator']} generator")
    previous = generator.state
    try:
        generator.state = saved
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        generator.state = previous
        raise _refuse(f"{where}.np_random", f"not a valid generator state ({str(exc)[:100]})") from None
    for target, name, value in updates:
        setattr(target, name, value)
    if mujoco_state is not None:
        import mujoco

        mujoco.mj_setState(layer.model, layer.data, mujoco_state, _mujoco_spec())


def capture_all(envs: gym.vector.VectorEnv) -> list[dict[str, Any]] | None:
    """States of every sub-environment of an in-process vector env; None if any cannot be captured."""
    sub_envs = getattr(envs, "envs", None)
    if sub_envs is None:
        return None  # AsyncVectorEnv: the environments live in other processes
    states = [capture(env) for env in sub_envs]
    return None if any(s is None for s in states) else states  # type: ignore[return-value]


def restore_all(envs: gym.vector.VectorEnv, states: list[dict[str, Any]]) -> None:
    sub_envs = envs.envs  # type: ignore[attr-defined]
    if not isinstance(states, list) or len(states) != len(sub_envs):
        raise _refuse("", f"must list the states of the {len(sub_envs)} environments")
    for i, (env, state) in enumerate(zip(sub_envs, states, strict=True)):
        restore(env, state, f"[{i}]")
