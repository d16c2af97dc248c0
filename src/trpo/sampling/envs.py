"""Environment creation and (pickle-free) description of spaces for saved models."""

from __future__ import annotations

import dataclasses
import functools
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from trpo.config.schema import TRPOConfig
from trpo.core.encoders import is_image_space
from trpo.errors import ConfigError, EnvContractError, UserError
from trpo.sampling.contract import checked_env
from trpo.sampling.env_spec import EnvSpec, check_kwargs, check_plain_data, check_spec, resolve_wrapper, spec_of

EnvFactory = Callable[[], gym.Env]
EnvLike = str | EnvSpec | EnvFactory | gym.Env | gym.vector.VectorEnv
"""What a learner can be given as its environment (see `env_source`)."""


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


def make_env(spec: EnvSpec, **overrides: Any) -> gym.Env:
    """`gymnasium.make(spec.id, **spec.kwargs, **overrides)` (importing `module` of `module:EnvId` first),
    wrapped by the spec's wrappers in order. Picklable as `functools.partial(make_env, spec)`."""
    check_spec(spec)
    env_id = spec.registered_id
    kwargs = {**spec.kwargs, **overrides}
    try:
        _route_mujoco_warnings(env_id)
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise UserError(f"environment {spec.id!r} needs a missing package: {exc}") from None
    except TypeError as exc:
        if not kwargs:
            raise
        raise UserError(f"cannot make {spec.id} with env_kwargs {kwargs}: {exc}") from None
    for wrapper in spec.wrappers:
        wrap = resolve_wrapper(wrapper, spec)
        try:
            env = wrap(env, **wrapper.kwargs)
        except TypeError as exc:
            raise UserError(f"cannot apply wrapper {wrapper.path} with kwargs {dict(wrapper.kwargs)}: {exc}") from None
    return env


class SingleInstance:
    """The factory of an environment instance that Gymnasium cannot describe: it returns the instance once
    (it becomes the one training environment); a second environment cannot be made from it."""

    def __init__(self, env: gym.Env) -> None:
        self.env: gym.Env | None = env

    def __call__(self) -> gym.Env:
        if self.env is None:
            raise UserError(
                "this learner was given one environment instance (without an env.spec to make copies from), "
                "which is its training environment; to evaluate or record, pass a function that makes a new "
                "environment (e.g. TRPO(lambda: MyEnv())), or an env id, or give evaluate(agent, env=...)"
            )
        env, self.env = self.env, None
        return env


@dataclasses.dataclass
class EnvSource:
    """Where a learner's environments come from: a factory of one environment, the env spec recorded with
    the model (None when Gymnasium cannot describe the environment) and, when the user gave one, the
    vector env to train on (then the factory only serves evaluation)."""

    factory: EnvFactory
    spec: EnvSpec | None
    vector: gym.vector.VectorEnv | None = None
    single_instance: bool = False
    why_no_spec: str = ""


def env_source(env: Any, env_kwargs: Mapping[str, Any] | None = None) -> EnvSource:
    """Resolve what `TRPO(env, env_kwargs=...)` was given: an id, an EnvSpec, a function that makes an
    environment, a `gymnasium.Env` instance or a `gymnasium.vector.VectorEnv`."""
    if env_kwargs and not isinstance(env, str):
        raise UserError("env_kwargs= goes with an environment id (pass the kwargs to your function otherwise)")
    if isinstance(env, str):
        env = EnvSpec(env, check_kwargs(env_kwargs or {}, "env_kwargs"))
    if isinstance(env, EnvSpec):
        if env.source_dir is None:
            check_spec(env)  # a spec read from a run is checked when its environment is made
            check_plain_data(env)
        return EnvSource(functools.partial(make_env, env), env)
    if isinstance(env, gym.vector.VectorEnv):
        return _vector_source(env)
    if isinstance(env, gym.Env):
        spec, why = spec_of(env.spec)
        if spec is not None:  # copies are made from the spec; the instance itself is left as it is
            return EnvSource(functools.partial(make_env, spec), spec)
        return EnvSource(SingleInstance(env), None, single_instance=True, why_no_spec=why)
    if callable(env):
        return EnvSource(env, None)
    raise UserError(
        "env must be a Gymnasium environment id, a function returning an environment, an environment "
        f"instance or a vector env, got {env!r}"
    )


def check_env_source(source: EnvSource, config: TRPOConfig) -> None:
    """Refuse a config that an environment instance, a function or a user's vector env cannot serve (ConfigError)."""
    if config.sampler == "envpool" and (source.spec is None or source.vector is not None):
        raise ConfigError(
            "sampler=envpool makes EnvPool's own environments from an env id: give TRPO the id (with env_kwargs), "
            "not a function, an instance or a vector env"
        )
    if source.vector is None and not source.single_instance:
        return
    what = "a vector env" if source.vector is not None else f"an environment instance that {source.why_no_spec}"
    if config.sampler != "sync":
        raise ConfigError(
            f"sampler={config.sampler} needs a function that makes the environment (or an env id), but TRPO "
            f"was given {what}, which cannot be copied into other processes; pass e.g. lambda: MyEnv()"
        )
    if source.single_instance and config.n_envs != 1:
        raise ConfigError(
            f"n_envs={config.n_envs} needs {config.n_envs} environments, but TRPO was given {what}: set "
            "n_envs=1, or pass a function that makes a new environment (e.g. lambda: MyEnv())"
        )
    if source.single_instance and config.eval_every > 0:
        raise ConfigError(
            f"eval_every needs a second environment to evaluate on, but TRPO was given {what}: set eval_every=0, "
            "or pass a function that makes a new environment (e.g. lambda: MyEnv())"
        )


def _vector_source(envs: gym.vector.VectorEnv) -> EnvSource:
    """A user's vector env: trained on as it is (it must autoreset in the same step); evaluation makes
    single environments from its spec when Gymnasium can describe it."""
    if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise UserError(
            "a vector env given to TRPO must autoreset in the same step: create it with "
            "autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP (e.g. gymnasium.make_vec(..., "
            "vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}))"
        )
    sub_envs = getattr(envs, "envs", None)
    spec, why = spec_of(sub_envs[0].spec if sub_envs else None)
    factory: EnvFactory = functools.partial(make_env, spec) if spec is not None else _no_single_env
    return EnvSource(factory, spec, vector=envs, why_no_spec=why)


def _no_single_env() -> gym.Env:
    raise UserError(
        "this learner trains on a vector env that Gymnasium cannot describe, so no single environment can be "
        "made to evaluate or record: give evaluate(agent, env=...), or train on an env id or function"
    )


def probe_env(factory: EnvFactory) -> tuple[spaces.Space, spaces.Space, EnvSpec | None]:
    """Observation and action space of the environment `factory` makes, and its env spec when Gymnasium
    can describe it (`env.spec`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = factory()
    try:
        return env.observation_space, env.action_space, spec_of(env.spec)[0]
    finally:
        env.close()


class CheckedAsyncVectorEnv(AsyncVectorEnv):
    """An AsyncVectorEnv whose workers' broken-contract errors reach the learner as one line: Gymnasium's
    log of the workers' tracebacks is left out for those (and kept for any other error)."""

    def _raise_if_errors(self, successes: Iterable[bool]) -> None:
        successes = list(successes)
        if all(successes):
            return
        errors = [self.error_queue.get() for _ in range(self.num_envs - sum(successes))]
        for error in errors:
            self.error_queue.put(error)
        with warnings.catch_warnings():
            if all(isinstance(e[1], type) and issubclass(e[1], EnvContractError) for e in errors):
                warnings.simplefilter("ignore")
            super()._raise_if_errors(successes)


def make_vector_env(factory: EnvFactory, n_envs: int, mode: str) -> gym.vector.VectorEnv:
    """`n_envs` copies in a vector env that autoresets in the same step (final obs in info), each inside a
    `ContractChecker` (a broken Gymnasium contract is one clear error).

    copy=False: step() returns the vector env's own observation buffer (5% faster on 16 HalfCheetah
    envs); the collector consumes each step's observations before the next step overwrites them.
    """
    vector_cls = CheckedAsyncVectorEnv if mode == "async" else SyncVectorEnv
    factories = [functools.partial(checked_env, factory, i) for i in range(n_envs)]
    return vector_cls(factories, autoreset_mode=AutoresetMode.SAME_STEP, copy=False)


def env_factory(env: str | EnvSpec | EnvFactory, **overrides: Any) -> tuple[EnvFactory, EnvSpec | None]:
    """A picklable function that creates one environment, and the env spec when there is one; `overrides`
    (e.g. render_mode) are passed to `gymnasium.make` on top of the spec's kwargs."""
    if isinstance(env, str):
        env = EnvSpec(env)
    if isinstance(env, EnvSpec):
        return functools.partial(make_env, env, **overrides), env
    if callable(env):
        return env, None
    raise UserError(f"env must be a Gymnasium environment id or a function returning an environment, got {env!r}")


def space_to_json(space: spaces.Space, prefix: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A JSON description of a supported space plus its bounds as tensors (no pickle)."""
    if isinstance(space, spaces.Box):
        desc: dict[str, Any] = {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
        if is_image_space(space):
            desc["image"] = True  # so that the space rebuilt from its shape alone is an image too
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
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = list(space.spaces.items()) if isinstance(space, spaces.Dict) else list(enumerate(space.spaces))
        parts, tensors = [], {}
        for key, sub in items:
            desc, sub_tensors = space_to_json(sub, f"{prefix}.{key}")
            parts.append([key, desc])
            tensors.update(sub_tensors)
        return {"type": type(space).__name__, "spaces": parts}, tensors
    raise UserError(f"cannot save a model for space {space}")


def space_from_json(
    desc: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str, shape_only: bool = False
) -> spaces.Space:
    """The space `space_to_json` described (`shape_only`: a Box with bounds 0, or [0, 255] for an image, for its
    shape and type)."""
    kind = desc.get("type")
    if kind == "Box":
        dtype = np.dtype(desc["dtype"])
        if shape_only:  # an image keeps its [0, 255] bounds: they make it one (is_image_space)
            top = 255 if desc.get("image") else 0
            return spaces.Box(low=0, high=top, shape=tuple(desc["shape"]), dtype=dtype)
        low = tensors[f"{prefix}.low"].numpy()
        high = tensors[f"{prefix}.high"].numpy()
        return spaces.Box(low=low, high=high, shape=tuple(desc["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.array(desc["nvec"], dtype=np.int64))
    if kind == "MultiBinary":
        return spaces.MultiBinary(int(desc["n"]))
    if kind == "Dict":
        return spaces.Dict(
            {key: space_from_json(sub, tensors, f"{prefix}.{key}", shape_only) for key, sub in desc["spaces"]}
        )
    if kind == "Tuple":
        return spaces.Tuple(
            [space_from_json(sub, tensors, f"{prefix}.{key}", shape_only) for key, sub in desc["spaces"]]
        )
    raise ValueError(f"unknown space type {kind!r}")


def space_signature(space: spaces.Space) -> tuple[Any, ...]:
    """What a model depends on in a space: its type and shape (Discrete: n and start, MultiDiscrete: nvec)."""
    if isinstance(space, spaces.Discrete):
        return ("Discrete", int(space.n), int(space.start))
    if isinstance(space, spaces.MultiDiscrete):
        return ("MultiDiscrete", tuple(int(n) for n in np.asarray(space.nvec).ravel()))
    if isinstance(space, spaces.Dict):
        return ("Dict", tuple((key, space_signature(sub)) for key, sub in space.spaces.items()))
    if isinstance(space, spaces.Tuple):
        return ("Tuple", tuple(space_signature(sub) for sub in space.spaces))
    return (type(space).__name__, tuple(space.shape or ()))


def _space_words(signature: tuple[Any, ...]) -> str:
    kind, *rest = signature
    return f"{kind}{tuple(rest[0]) if len(rest) == 1 and isinstance(rest[0], tuple) else tuple(rest)}"


def check_spaces(
    model: tuple[spaces.Space, spaces.Space], env: tuple[spaces.Space, spaces.Space], env_name: str = "the environment"
) -> None:
    """Refuse (`UserError`, one line) an environment whose observation or action space is not the one the
    model was saved with: its outputs would mean nothing there (a CartPole model on Pendulum-v1)."""
    for what, saved, actual in (("observation", model[0], env[0]), ("action", model[1], env[1])):
        a, b = space_signature(saved), space_signature(actual)
        if a != b:
            raise UserError(
                f"{env_name}'s {what} space is {_space_words(b)} but the model was saved for {_space_words(a)}: "
                "the model was trained on another environment (give that one with --env ENV_ID)"
            )
