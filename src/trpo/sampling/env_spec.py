"""`EnvSpec`: an environment as data (id, keyword arguments, wrappers), and making environments from it.

An `EnvSpec` is what `trpo train MODULE:ENV_ID --env-kwargs ... --wrapper ...` (or `env_id`, `env_kwargs`
and `env_wrappers` in a config file) describes; it is written to `config.yaml` and the checkpoint so that
`trpo eval`, `record` and `train --resume` rebuild the same environment:

    env = gymnasium.make(ENV_ID, **kwargs)            after importing MODULE, as gymnasium.make does
    env = Wrapper1(env, **kwargs1); env = Wrapper2(env, **kwargs2) ...     in order

A run directory is data, never code: a spec read from a saved run (`source_dir` set) imports its modules
only from where Python finds installed modules and from `PYTHONPATH`, never from the current directory or
the run directory (which `python -m` and scripts run from there would put on `sys.path`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from trpo.config.safe_yaml import load_yaml_text, short
from trpo.errors import ConfigError, UserError

if TYPE_CHECKING:
    from gymnasium.envs.registration import EnvSpec as GymEnvSpec

WRAPPER_SYNTAX = 'MODULE:CLASS or MODULE:CLASS={"kwarg": value}'


@dataclasses.dataclass(frozen=True)
class WrapperSpec:
    """One wrapper: the import path `module:Class` of a callable `Class(env, **kwargs)` and its kwargs."""

    path: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_data(self) -> str | dict[str, Any]:
        """The YAML/JSON form: `"module:Class"`, or `{"module:Class": {kwargs}}` with kwargs."""
        return {self.path: dict(self.kwargs)} if self.kwargs else self.path


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """An environment: Gymnasium id (`module:EnvId` imports `module` first), kwargs and wrappers in order.

    `source_dir` is the run directory the spec was read from (None when the user gave it): such a spec
    imports nothing from the current directory or the run directory.
    """

    id: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    wrappers: tuple[WrapperSpec, ...] = ()
    source_dir: str | None = dataclasses.field(default=None, compare=False)

    @property
    def module(self) -> str | None:
        """The module named before ':' in the id (None for a plain registered id)."""
        module, sep, _ = self.id.partition(":")
        return module if sep else None

    @property
    def registered_id(self) -> str:
        """The id in Gymnasium's registry (the part after 'module:')."""
        return self.id.partition(":")[2] or self.id

    def to_data(self) -> dict[str, Any]:
        """Plain data for config.yaml and state.json: env_id, env_kwargs, env_wrappers."""
        return {
            "env_id": self.id,
            "env_kwargs": dict(self.kwargs),
            "env_wrappers": [w.to_data() for w in self.wrappers],
        }

    def flags(self) -> list[str]:
        """The `trpo train` flags of the kwargs and wrappers (the id is the positional argument)."""
        out = ["--env-kwargs", json.dumps(dict(self.kwargs))] if self.kwargs else []
        for w in self.wrappers:
            out += ["--wrapper", f"{w.path}={json.dumps(dict(w.kwargs))}" if w.kwargs else w.path]
        return out

    def describe(self) -> str:
        """One line: the id, kwargs and wrappers as the command line would give them."""
        parts = [self.id]
        if self.kwargs:
            parts.append(f"--env-kwargs '{json.dumps(dict(self.kwargs))}'")
        for w in self.wrappers:
            parts.append(f"--wrapper '{w.path}={json.dumps(dict(w.kwargs))}'" if w.kwargs else f"--wrapper {w.path}")
        return " ".join(parts)


def check_plain_data(spec: EnvSpec) -> None:
    """Refuse kwargs that cannot be saved with the model as JSON (UserError)."""
    try:
        json.dumps(spec.to_data(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"the kwargs of {spec.id} (or of its wrappers) must be plain data (numbers, strings, lists, mappings) "
            f"to be saved with the model: {exc}; pass a function that makes the environment instead"
        ) from None


def spec_from_data(data: Mapping[str, Any], source: str, source_dir: str | None = None) -> EnvSpec | None:
    """The EnvSpec of `env_id`/`env_kwargs`/`env_wrappers` entries (None without `env_id`); `source`
    names where they came from in error messages."""
    if not isinstance(data, Mapping):
        raise UserError(
            f"{source} must be a mapping of env_id, env_kwargs and env_wrappers (got {type(data).__name__})"
        )
    env_id = data.get("env_id")
    if env_id is None:
        return None
    if not isinstance(env_id, str) or not env_id:
        raise UserError(f"{source}: env_id must be an environment id such as CartPole-v1 (got {env_id!r})")
    kwargs = check_kwargs(data.get("env_kwargs") or {}, f"{source}: env_kwargs")
    wrappers = wrappers_from_data(data.get("env_wrappers") or [], f"{source}: env_wrappers")
    return EnvSpec(env_id, kwargs, wrappers, source_dir)


def check_kwargs(value: Any, what: str) -> dict[str, Any]:
    """`value` as a dict of keyword arguments (string keys), or a UserError naming `what`."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise UserError(f'{what} must be a mapping of keyword: value, e.g. {{"g": 9.0}} (got {short(value)})')
    return dict(value)


def parse_mapping(text: str, what: str) -> dict[str, Any]:
    """A mapping given on the command line as JSON or inline YAML (`{g: 9.0}`, `'{"g": 9.0}'`, `g: 9.0`)."""
    source = f"{what} {short(text)}"
    try:
        value = load_yaml_text(text, source)  # JSON is YAML
    except ConfigError as exc:
        detail = str(exc).removeprefix(source).strip()
        raise UserError(f"{source} is not a JSON or YAML mapping ({detail})") from None
    return check_kwargs(value if value is not None else {}, f"{what} {short(text)}")


def parse_wrapper(text: str) -> WrapperSpec:
    """`module:Class` or `module:Class={kwargs as JSON or YAML}` (the --wrapper flag)."""
    path, sep, kwargs_text = text.partition("=")
    path = path.strip()
    _check_path(path, f"--wrapper {text!r}")
    kwargs = parse_mapping(kwargs_text, f"--wrapper {path} kwargs") if sep else {}
    return WrapperSpec(path, kwargs)


def wrappers_from_data(value: Any, what: str) -> tuple[WrapperSpec, ...]:
    """A YAML list of wrappers, RL-Zoo style: `- module:Class` or `- module:Class: {kwarg: value}`."""
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{what} must be a list of {WRAPPER_SYNTAX.replace('=', ': ')} entries (got {value!r})")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(WrapperSpec(item))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((path, kwargs),) = item.items()
            out.append(WrapperSpec(str(path), check_kwargs(kwargs or {}, f"{what}: {path}")))
        else:
            raise UserError(f"{what}: each entry is 'module:Class' or {{'module:Class': {{kwargs}}}} (got {item!r})")
        _check_path(out[-1].path, what)
    return tuple(out)


def _check_path(path: str, what: str) -> None:
    module, sep, name = path.partition(":")
    if not (sep and module and name):
        raise UserError(f"{what}: a wrapper is {WRAPPER_SYNTAX}, e.g. gymnasium.wrappers:FlattenObservation")


def cli_spec(env: str | None, env_kwargs: str | None, wrappers: Sequence[str], base: EnvSpec | None) -> EnvSpec | None:
    """The env spec of `--env`/`--env-kwargs`/`--wrapper` flags: `--env` replaces `base` (the run's spec);
    `--env-kwargs` and `--wrapper` alone replace only its kwargs or wrappers. None when nothing was given."""
    if env is None and env_kwargs is None and not wrappers:
        return base
    kwargs = parse_mapping(env_kwargs, "--env-kwargs") if env_kwargs is not None else None
    parsed = tuple(parse_wrapper(w) for w in wrappers) if wrappers else None
    if env is not None:
        return EnvSpec(env, kwargs or {}, parsed or ())
    if base is None:
        raise UserError("--env-kwargs and --wrapper need the environment too: pass --env ENV_ID")
    return dataclasses.replace(
        base,
        kwargs=kwargs if kwargs is not None else base.kwargs,
        wrappers=parsed if parsed is not None else base.wrappers,
    )


def command_spec(
    env_id: str, config: Path | None, env_kwargs: str | None, wrappers: Sequence[str], preset: bool = False
) -> EnvSpec:
    """The env spec of a command's ENV_ID, its --config file's env_kwargs/env_wrappers, then its
    --env-kwargs/--wrapper flags (which replace the file's). With `preset`, ENV_ID's preset fills in what
    the file leaves out: its wrappers unless a --wrapper is given, its kwargs under --env-kwargs (a key given
    wins)."""
    from trpo.config.presets import preset_env_kwargs, preset_wrappers
    from trpo.config.schema import load_yaml_env

    file_env = load_yaml_env(config) if config is not None else {}
    preset_kwargs: dict[str, Any] = {}
    if preset:
        registered = EnvSpec(env_id).registered_id
        if "env_wrappers" not in file_env and not wrappers:
            file_env = {**file_env, "env_wrappers": preset_wrappers(registered)}
        if "env_kwargs" not in file_env:  # a config file's env_kwargs replace the preset's
            preset_kwargs = preset_env_kwargs(registered)
    recorded = spec_from_data({**file_env, "env_id": env_id}, str(config))
    spec = cli_spec(None, env_kwargs, wrappers, recorded)
    assert spec is not None
    return dataclasses.replace(spec, kwargs={**preset_kwargs, **spec.kwargs}) if preset_kwargs else spec


def preset_env_spec(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> EnvSpec:
    """`env_id` with its preset's environment entries, as `trpo train ENV_ID` makes it (`TRPO(ENV_ID)` with
    no config): the preset's wrappers, and its `gymnasium.make` kwargs with `env_kwargs` on top."""
    from trpo.config.presets import preset_env_kwargs, preset_wrappers

    registered = EnvSpec(env_id).registered_id
    kwargs = {**preset_env_kwargs(registered), **check_kwargs(env_kwargs or {}, "env_kwargs")}
    return EnvSpec(
        env_id, kwargs, wrappers_from_data(preset_wrappers(registered), f"preset {registered}: env_wrappers")
    )


# ---------------------------------------------------------------------------------------------- imports


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry or ".").resolve()
    except OSError:  # pragma: no cover - e.g. a deleted cwd
        return None


def _trusted_sys_path(source_dir: str) -> list[str]:
    """`sys.path` without the current directory, `source_dir` (a saved model) and its parent (the run
    directory of a checkpoint), unless the user put them on PYTHONPATH."""
    explicit = {_resolved(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    banned = {_resolved(""), _resolved(source_dir), _resolved(str(Path(source_dir).parent))} - explicit
    return [entry for entry in sys.path if _resolved(entry) not in banned]


@contextlib.contextmanager
def _sys_path(entries: list[str]) -> Iterator[None]:
    saved = sys.path[:]
    sys.path[:] = entries
    try:
        yield
    finally:
        sys.path[:] = saved


def import_module(name: str, spec: EnvSpec, what: str) -> Any:
    """Import `name` for `spec` (`what` says why, for messages); a spec read from a run directory does
    not look in the current directory or the run directory."""
    if spec.source_dir is None:
        context: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        context = _sys_path(_trusted_sys_path(spec.source_dir))
    try:
        with context:
            return importlib.import_module(name)
    except ImportError as exc:
        if spec.source_dir is not None:
            raise UserError(
                f"cannot import module {name!r} ({what}, recorded in {spec.source_dir}): {exc}; a run directory "
                "is data, so modules are not imported from it or from the current directory: install the "
                "module or put its directory on PYTHONPATH, or give the environment with --env"
            ) from None
        raise UserError(
            f"cannot import module {name!r} ({what}): {exc}; install it or put its directory on PYTHONPATH "
            "(e.g. `PYTHONPATH=. trpo ...`)"
        ) from None


def resolve_wrapper(wrapper: WrapperSpec, spec: EnvSpec) -> Any:
    """The callable a wrapper's `module:Class` path names."""
    module_name, _, attr = wrapper.path.partition(":")
    target = import_module(module_name, spec, f"wrapper {wrapper.path}")
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(f"wrapper {wrapper.path}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"wrapper {wrapper.path} is not a class or function that takes an environment")
    return target


REGISTERING_PACKAGES = {"ALE/": "ale_py", "MiniGrid-": "minigrid", "BabyAI-": "minigrid"}
"""Id prefixes whose package registers them when imported (what `import ale_py` does in a script): a plain
`trpo train ALE/Pong-v5` or `MiniGrid-Empty-8x8-v0` imports it first, when it is installed."""


def check_spec(spec: EnvSpec) -> None:
    """Import the spec's modules and check that its id is registered and its wrappers exist (UserError)."""
    import gymnasium as gym

    if spec.module is not None:
        import_module(spec.module, spec, f"environment {spec.id}")
    else:
        for prefix, package in REGISTERING_PACKAGES.items():
            if spec.id.startswith(prefix) and importlib.util.find_spec(package) is not None:
                importlib.import_module(package)
    try:
        gym.spec(spec.registered_id)
    except gym.error.Error as exc:
        hint = (
            "; it was recorded by a run: pass the module that registers it with --env MODULE:ID"
            if spec.source_dir is not None and spec.module is None
            else ""
        )
        raise UserError(
            f'unknown environment id {spec.id!r}: {exc} (list ids with `python -c "import gymnasium; '
            'gymnasium.pprint_registry()"`; MuJoCo ids need `pip install gymnasium[mujoco]`; an environment '
            f"of your own: MODULE:ID, where importing MODULE registers ID){hint}"
        ) from None
    for wrapper in spec.wrappers:
        resolve_wrapper(wrapper, spec)


# ---------------------------------------------------------------------------------------------- describing


def _defining_module(entry_point: Any) -> str | None:
    """The module that defines a registered environment outside Gymnasium (importing it, or its package,
    usually registers the id), so that a recorded id is `module:EnvId`; None for Gymnasium's own and
    for environments defined in a script (`__main__`)."""
    module = entry_point.partition(":")[0] if isinstance(entry_point, str) else getattr(entry_point, "__module__", None)
    if not module or module == "__main__" or module.split(".")[0] == "gymnasium":
        return None
    return str(module)


def spec_of(gym_spec: GymEnvSpec | None) -> tuple[EnvSpec | None, str]:
    """The EnvSpec of an environment made by `gymnasium.make` (its `env.spec`), or None and the reason
    it cannot be described (no spec, a wrapper without recorded arguments, values that are not plain data)."""
    from gymnasium.envs.registration import registry

    if gym_spec is None:
        return None, "has no env.spec (it was not made by gymnasium.make)"
    kwargs = {k: v for k, v in gym_spec.kwargs.items() if k != "render_mode"}
    registered = registry.get(gym_spec.id)
    if registered is not None and gym_spec.max_episode_steps != registered.max_episode_steps:
        kwargs["max_episode_steps"] = gym_spec.max_episode_steps
    wrappers = []
    for w in gym_spec.additional_wrappers:
        if w.kwargs is None or not isinstance(w.entry_point, str):
            return None, f"has a wrapper, {w.name}, that does not record its arguments (RecordConstructorArgs)"
        wrappers.append(WrapperSpec(w.entry_point, dict(w.kwargs)))
    module = _defining_module(gym_spec.entry_point)
    env_id = f"{module}:{gym_spec.id}" if module is not None else gym_spec.id
    spec = EnvSpec(env_id, kwargs, tuple(wrappers))
    try:
        json.dumps(spec.to_data(), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return None, f"has kwargs that are not plain data ({exc})"
    return spec, ""


@dataclasses.dataclass(frozen=True)
class EnvFlags:
    """The environment to use instead of the one the run recorded (needed when it could not be recorded)."""

    env: Annotated[str | None, tyro.conf.arg(metavar="ENV_ID", help_behavior_hint="")] = None
    """Environment id instead of the run's (MODULE:ENV_ID imports MODULE first, as gymnasium.make does)."""
    env_kwargs: Annotated[str | None, tyro.conf.arg(metavar="MAPPING", help_behavior_hint="")] = None
    """Keyword arguments of the environment, a JSON or YAML mapping, e.g. '{"g": 9.0}' (replace the run's)."""
    wrapper: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="MODULE:CLASS")] = ()
    """Wrapper around the environment, MODULE:CLASS or MODULE:CLASS={"kwarg": value}; repeat for several,
    applied in order (replace the run's)."""

    def spec(self, recorded: EnvSpec | None) -> EnvSpec | None:
        """The env spec these flags give on top of the run's `recorded` one."""
        return cli_spec(self.env, self.env_kwargs, self.wrapper, recorded)
