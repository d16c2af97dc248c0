"""What a checkpoint may contain, declared, and checked before anything is built from it.

A checkpoint directory is data that may come from anyone (a colleague's run, a download, a file edited by
hand): everything read from state.json and model.safetensors is checked here against the schema below,
and refused with one line naming the file and the field (`CheckpointError`, exit status 2):

- state.json: every entry's type, finite numbers, ranges (counters >= 0, random states of their exact
  length), sizes (lists no longer than the run's environments or 100 recent episodes), and the config
  with the rules `trpo.config.schema` declares for each field (`Rule`/`knob`);
- the saved observation and action spaces (supported types, bounded sizes);
- model.safetensors: exactly the tensors the config and the spaces call for, each of its shape, finite
  (network weights, optimiser moments, normaliser statistics; variances and counts >= 0), of a floating
  dtype, and the file no larger than those tensors need.

The reading itself is bounded by `trpo.run.checkpoint` (file size, JSON depth, integer length, no NaN).
Environment states are checked against the live environment when they are restored
(`trpo.sampling.env_state`); the memory the run needs by `trpo.run.resources`.

Why this file is long (~540 lines): it declares the schema of every field of a checkpoint (state.json, config, tensors)
in one place, as issue 17 asks; each check is a short rule.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from gymnasium import spaces

from trpo.config.safe_yaml import short
from trpo.config.schema import SAFE, TRPOConfig, config_from_dict
from trpo.core.device import resolve_device
from trpo.core.distributions import mask_sizes
from trpo.core.encoders import ObservationLayout
from trpo.core.networks import make_distribution
from trpo.errors import ConfigError, UserError
from trpo.run.checkpoint import CheckpointError
from trpo.run.resources import check_fits
from trpo.sampling.envs import space_from_json
from trpo.sampling.policies import make_actor, make_critic

MAX_COUNT = 2**62
"""Upper bound of step, update and episode counters."""
MAX_TEXT = 10_000
MAX_RECENT = 100
"""Recent episodes a sampler keeps (EpisodeStats' deque)."""
MAX_SPACE_ELEMENTS = 10_000_000
MAX_DISCRETE = 2**31
SPACE_DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"}
)
SAMPLER_FIELDS = ("sampler", "workers", "worker_cpus", "ray_address")
"""Config fields that say where and how a run samples (local processes, a Ray cluster's address): never
taken from a run directory, which is data (`sanitize_execution`)."""


class Problem(Exception):
    """A schema violation at a path inside a document (turned into a CheckpointError naming the file)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


# ---------------------------------------------------------------- declarations

Check = Callable[[Any, str], None]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def integer(lo: int = 0, hi: int = MAX_COUNT) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Problem(path, f"must be an integer (got {short(value)} of type {_type_name(value)})")
        if not lo <= value <= hi:
            raise Problem(path, f"must be in [{lo}, {hi}] (got {value})")

    return check


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Problem(path, f"must be a number (got {short(value)} of type {_type_name(value)})")
        if not math.isfinite(value):
            raise Problem(path, f"must be finite (got {value})")
        if not lo <= value <= hi:
            raise Problem(path, f"must be in [{lo:g}, {hi:g}] (got {value})")

    return check


def text(max_len: int = MAX_TEXT) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise Problem(path, f"must be a string (got {short(value)} of type {_type_name(value)})")
        if len(value) > max_len:
            raise Problem(path, f"is a string of {len(value):,} characters; at most {max_len:,}")

    return check


def boolean(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise Problem(path, f"must be true or false (got {short(value)})")


def one_of(*choices: Any) -> Check:
    def check(value: Any, path: str) -> None:
        if isinstance(value, (dict, list)) or value not in choices:
            raise Problem(path, f"must be one of {', '.join(map(repr, choices))} (got {short(value)})")

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def list_of(item: Check, max_len: int, length: int | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise Problem(path, f"must be a list (got {short(value)} of type {_type_name(value)})")
        if length is not None and len(value) != length:
            raise Problem(path, f"must have {length} entries (got {len(value)})")
        if len(value) > max_len:
            raise Problem(path, f"has {len(value):,} entries; at most {max_len:,}")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")

    return check


def mapping(fields: Mapping[str, Check], optional: tuple[str, ...] = (), extra: bool = False) -> Check:
    """A JSON object with these keys (those in `optional` may be missing; others are refused unless `extra`)."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Problem(path, f"must be an object (got {short(value)} of type {_type_name(value)})")
        for key, field in fields.items():
            if key in value:
                field(value[key], f"{path}.{key}" if path else key)
            elif key not in optional:
                raise Problem(f"{path}.{key}" if path else key, "is missing")
        if not extra:
            unknown = [k for k in value if k not in fields]
            if unknown:
                raise Problem(path or "state", f"has an unknown entry {short(unknown[0])}")

    return check


def dict_of(value_check: Check, max_len: int = 64) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Problem(path, f"must be an object (got {short(value)} of type {_type_name(value)})")
        if len(value) > max_len:
            raise Problem(path, f"has {len(value):,} entries; at most {max_len}")
        for k, v in value.items():
            text(100)(k, f"{path} key")
            value_check(v, f"{path}.{k}")

    return check


def any_json(max_items: int = 10_000) -> Check:
    """Left to the code that reads it (e.g. the env spec), only bounded in size here."""

    def check(value: Any, path: str) -> None:
        seen, stack = 0, [value]
        while stack:
            item = stack.pop()
            seen += 1
            if seen > max_items:
                raise Problem(path, f"has more than {max_items:,} values")
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and len(item) > MAX_TEXT:
                raise Problem(path, f"holds a string of {len(item):,} characters")

    return check


def _shape(value: Any, path: str) -> None:
    list_of(integer(1, MAX_SPACE_ELEMENTS), 8)(value, path)
    if not value:
        raise Problem(path, "must have at least one dimension")
    if math.prod(value) > MAX_SPACE_ELEMENTS:
        raise Problem(path, f"has {math.prod(value):,} elements; at most {MAX_SPACE_ELEMENTS:,}")


def _any(value: Any, path: str) -> None:
    """Anything (checked by the caller)."""


def space(value: Any, path: str, nested: bool = False) -> None:
    """A space as `trpo.sampling.envs.space_to_json` writes it (Dict / Tuple of leaves, not nested deeper)."""
    if not isinstance(value, dict):
        raise Problem(path, f"must be an object (got {short(value)} of type {_type_name(value)})")
    kinds: dict[str, Check] = {
        "Box": mapping(
            {"type": one_of("Box"), "shape": _shape, "dtype": one_of(*sorted(SPACE_DTYPES)), "image": boolean},
            optional=("image",),
        ),
        "Discrete": mapping(
            {"type": one_of("Discrete"), "n": integer(1, MAX_DISCRETE), "start": integer(-MAX_DISCRETE, MAX_DISCRETE)},
            optional=("start",),
        ),
        "MultiDiscrete": mapping({"type": one_of("MultiDiscrete"), "nvec": list_of(integer(1, MAX_DISCRETE), 100_000)}),
        "MultiBinary": mapping({"type": one_of("MultiBinary"), "n": integer(1, MAX_SPACE_ELEMENTS)}),
    }
    kind = value.get("type")
    if kind in ("Dict", "Tuple") and not nested:  # one level of leaves, as ObservationLayout takes them
        mapping({"type": one_of(kind), "spaces": list_of(list_of(_any, 2), 1000)})(value, path)
        for i, item in enumerate(value["spaces"]):
            key, sub = item if len(item) == 2 else (None, None)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise Problem(f"{path}.spaces[{i}]", "must be [key, space] with a string or integer key")
            space(sub, f"{path}.spaces[{i}]", nested=True)
        return
    if not isinstance(kind, str) or kind not in kinds:
        raise Problem(f"{path}.type", f"must be one of {', '.join(kinds)} (got {short(kind)})")
    kinds[kind](value, path)
    if kind == "MultiDiscrete":
        if not value["nvec"]:
            raise Problem(f"{path}.nvec", "must not be empty")
        if sum(value["nvec"]) > MAX_SPACE_ELEMENTS:
            raise Problem(f"{path}.nvec", f"sums to {sum(value['nvec']):,}; at most {MAX_SPACE_ELEMENTS:,}")


HEALTH = mapping({
    "streaks": dict_of(integer()),
    "fired": list_of(
        mapping(
            {"name": text(100), "update": integer(), "step": integer(), "message": text(), "fix": text(),
             "updates_held": integer()},
            optional=("updates_held",),
        ),
        64,
    ),
    "initial_entropy": nullable(number()),
    "line_search_failures": integer(),
})  # fmt: skip


def python_rng(value: Any, path: str) -> None:
    """random.getstate() as saved: [version, 625 words, gauss or null]."""
    if not isinstance(value, list) or len(value) != 3:
        raise Problem(path, f"must be [version, state, gauss] (got {short(value)})")
    one_of(3)(value[0], f"{path}[0]")
    list_of(integer(0, 2**32 - 1), 625, length=625)(value[1], f"{path}[1]")
    if not 0 <= value[1][-1] <= 624:
        raise Problem(f"{path}[1][624]", f"is the position and must be in [0, 624] (got {value[1][-1]})")
    nullable(number())(value[2], f"{path}[2]")


def collector(n_envs: int) -> Check:
    """A sampler's saved state (`SyncSampler.state()` or `RemoteSampler.state()`); env states are checked
    against the live environments when restored."""
    return mapping(
        {
            "envs": nullable(list_of(any_json(100_000), n_envs, length=n_envs)),
            "episode_return": list_of(number(), n_envs, length=n_envs),
            "episode_length": list_of(integer(), n_envs, length=n_envs),
            "recent_returns": list_of(number(), MAX_RECENT),
            "recent_lengths": list_of(integer(), MAX_RECENT),
            "episodes": integer(),
            "reward_returns": list_of(number(), n_envs, length=n_envs),
            "recent_costs": list_of(number(), MAX_RECENT),
            "saw_costs": boolean,
            "episode_cost": list_of(number(), n_envs, length=n_envs),
        },
        optional=("episode_return", "episode_length", "reward_returns", "recent_costs", "saw_costs", "episode_cost"),
    )


def state_schema(n_envs: int, extra_counters: tuple[str, ...] = ()) -> Check:
    """state.json as `Learner.state()` writes it; `extra_counters`: an algorithm's own (e.g. CPO's)."""
    return mapping(
        {
            "format": one_of("trpo-checkpoint"),
            "version": one_of(1),
            "model_sha256": text(64),
            "algo": text(20),
            "env_id": nullable(text(1000)),
            "env_spec": nullable(any_json()),
            "config": any_json(),  # checked field by field by config_from_dict and TRPOConfig.validate
            "observation_space": space,
            "action_space": space,
            "num_steps": integer(),
            "num_updates": integer(),
            "rejected_in_a_row": integer(),
            "skipped_batches": integer(),
            "last_rejection": text(),
            "health": HEALTH,
            "rng": mapping({"python": python_rng, "numpy": RNG_NUMPY}),
            "collector": collector(n_envs),
            "custom_networks": list_of(one_of("actor", "critic"), 2),
            "policy_state": dict_of(dict_of(number(), 16), 16),  # e.g. TRPO-Lagrangian's multiplier
            **{name: integer() for name in extra_counters},
        },
        optional=("env_id", "env_spec", "rejected_in_a_row", "skipped_batches", "last_rejection", "health", "rng",
                  "collector", "custom_networks", "policy_state", *extra_counters),
    )  # fmt: skip


RNG_NUMPY = mapping({
    "key": list_of(integer(0, 2**32 - 1), 624, length=624),
    "pos": integer(0, 624),
    "has_gauss": integer(0, 1),
    "gauss": number(),
})  # fmt: skip


# ---------------------------------------------------------------- the checks


@dataclasses.dataclass(frozen=True)
class CheckedState:
    """What `check_state` established: the config (sampler fields from the caller, not the run), the
    spaces' descriptions, and the sampler fields the run recorded."""

    config: TRPOConfig
    recorded_sampler: dict[str, Any]
    spaces: tuple[spaces.Space, spaces.Space]
    """The saved spaces' types and shapes (Box bounds are in model.safetensors, read later)."""


def _refuse(where: str, problem: Exception) -> CheckpointError:
    return CheckpointError(f"{where}: {problem}; the checkpoint cannot be used")


def on_this_machine(config: TRPOConfig) -> TRPOConfig:
    """A model is data: it runs where it is loaded. A recorded CUDA device this machine lacks becomes the CPU."""
    try:
        resolve_device(config.device)
    except ConfigError:
        return config.replace(device="cpu")
    return config


def sanitize_execution(config: TRPOConfig) -> TRPOConfig:
    """`config` with the sampler fields at their defaults: a run directory never decides where a loaded
    model samples (no Ray address, sampler or worker count is taken from it)."""
    defaults = TRPOConfig()
    return dataclasses.replace(config, **{name: getattr(defaults, name) for name in SAMPLER_FIELDS})


def check_state(state: dict[str, Any], where: str, algorithms: Mapping[str, Any]) -> CheckedState:
    """Check state.json (already parsed within bounds) against the schema; `where` names the file."""
    config_data = state.get("config")
    if not isinstance(config_data, dict):
        raise _refuse(where, Problem("config", f"must be an object (got {short(config_data)})"))
    algo = state.get("algo", "trpo")
    if not isinstance(algo, str) or algo not in algorithms:
        raise CheckpointError(
            f"{where} holds a model of unknown algorithm {short(algo)}; known: {', '.join(algorithms)}"
        )
    try:
        config = config_from_dict(config_data, source=f"{where}: config")
        recorded = {name: getattr(config, name) for name in SAMPLER_FIELDS}
        config = on_this_machine(sanitize_execution(config).replace(algo=algo)).validate(unread="keep")
    except UserError as exc:
        message = str(exc)
        raise CheckpointError(message if message.startswith(where) else f"{where}: config: {message}") from None
    try:
        space(state.get("observation_space"), "observation_space")
        space(state.get("action_space"), "action_space")
    except Problem as exc:
        raise _refuse(where, exc) from None
    try:  # the memory the run needs, before any list sized by it is looked at
        shapes = (
            space_from_json(state["observation_space"], {}, "observation_space", shape_only=True),
            space_from_json(state["action_space"], {}, "action_space", shape_only=True),
        )
        make_distribution(shapes[1])  # an action space no policy supports is refused here
        check_fits(config, *shapes)
    except UserError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    try:
        base_counters = ("num_steps", "num_updates", "rejected_in_a_row", "skipped_batches")
        counters = tuple(c for c in getattr(algorithms[algo], "COUNTERS", ()) if c not in base_counters)
        state_schema(config.n_envs, counters)(state, "")
    except Problem as exc:
        raise _refuse(where, exc) from None
    return CheckedState(config, recorded, shapes)


@dataclasses.dataclass(frozen=True)
class TensorRule:
    shape: tuple[int, ...]
    kind: str
    """weight (floating, finite), nonneg (floating, finite, >= 0), bound (floating, not NaN), rng (uint8),
    obs (numeric, finite if floating)."""


def expected_tensors(
    config: TRPOConfig,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    algo: str,
    actor_net: torch.nn.Module | None = None,
    critic_net: torch.nn.Module | None = None,
) -> dict[str, TensorRule]:
    """Every tensor a checkpoint of this config and these spaces holds, with its shape (the networks are
    built on torch's meta device: shapes only, no memory, no initialisation; custom networks as given)."""
    layout = ObservationLayout(observation_space)
    dist = make_distribution(action_space)
    shapes_only = config.replace(ortho_init=False)
    with torch.device("meta"):
        actor = make_actor(shapes_only, layout, dist, body=actor_net)
        critic = make_critic(shapes_only, layout, body=critic_net)
        cost_critic = make_critic(shapes_only, layout) if algo in SAFE else None
    rules: dict[str, TensorRule] = {}
    networks: list[tuple[str, torch.nn.Module]] = [("actor", actor), ("critic", critic)]
    if cost_critic is not None:
        networks.append(("cost_critic", cost_critic))
    for prefix, net in networks:
        for name, tensor in net.state_dict().items():
            rules[f"{prefix}.{name}"] = TensorRule(tuple(tensor.shape), "weight")
    for prefix, shape in (("obs_rms", (layout.norm_dim,)), ("ret_rms", ())):
        rules[f"{prefix}.mean"] = TensorRule(shape, "weight")
        rules[f"{prefix}.var"] = TensorRule(shape, "nonneg")
        rules[f"{prefix}.count"] = TensorRule((), "nonneg")
    leaves = [(None, observation_space)] if layout.structure == "single" else _leaf_spaces(observation_space)
    for key, leaf_space in leaves:
        if isinstance(leaf_space, spaces.Box):
            prefix = "observation_space" if key is None else f"observation_space.{key}"
            for side in ("low", "high"):
                rules[f"{prefix}.{side}"] = TensorRule(tuple(leaf_space.shape), "bound")
    if isinstance(action_space, spaces.Box):
        for side in ("low", "high"):
            rules[f"action_space.{side}"] = TensorRule(tuple(action_space.shape), "bound")
    state_bytes = torch.get_rng_state().numel()
    rules["rng.torch"] = TensorRule((state_bytes,), "rng")
    rules["rng.generator"] = TensorRule((state_bytes,), "rng")
    optimised: dict[str, torch.nn.Module] = {"critic_optimizer": critic}
    if algo == "ppo":
        optimised["actor_optimizer"] = actor
    if cost_critic is not None:
        optimised["cost_critic_optimizer"] = cost_critic
    for prefix, module in optimised.items():
        for i, param in enumerate(module.parameters()):
            rules[f"{prefix}.{i}.step"] = TensorRule((), "nonneg")
            rules[f"{prefix}.{i}.exp_avg"] = TensorRule(tuple(param.shape), "weight")
            rules[f"{prefix}.{i}.exp_avg_sq"] = TensorRule(tuple(param.shape), "nonneg")
    for leaf in layout.leaves:
        name = "collector.raw_obs" if leaf.key is None else f"collector.raw_obs.{leaf.key}"
        rules[name] = TensorRule((config.n_envs, *leaf.shape), "obs")
    if mask_sizes(dist) is not None:  # the current legal actions of an environment with action masks
        rules["collector.mask"] = TensorRule((config.n_envs, dist.param_dim), "obs")
    return rules


def _leaf_spaces(space: spaces.Space) -> list[tuple[Any, spaces.Space]]:
    """The (key, space) leaves of a Dict or Tuple space."""
    if isinstance(space, spaces.Dict):
        return list(space.spaces.items())
    assert isinstance(space, spaces.Tuple)
    return list(enumerate(space.spaces))


OPTIONAL_PREFIXES = (
    "critic_optimizer.",
    "actor_optimizer.",
    "cost_critic_optimizer.",
    "cost_critic.",
    "collector.",
    "rng.",
)
"""Tensors a checkpoint may lack: optimiser moments before the first update, the sampler's state of a model
saved without one, random states of old checkpoints."""


def max_model_bytes(rules: Mapping[str, TensorRule]) -> int:
    """The largest model.safetensors these tensors can make (8 bytes an element, a generous header)."""
    return sum(8 * math.prod(r.shape) + 256 for r in rules.values()) + (1 << 20)


def check_tensors(tensors: Mapping[str, torch.Tensor], rules: Mapping[str, TensorRule], where: str) -> None:
    """Exactly the expected tensors, of the expected shapes and dtypes, finite where they must be."""
    for name, tensor in tensors.items():
        rule = rules.get(name)
        if rule is None:
            raise CheckpointError(f"{where}: unexpected tensor {short(name)} (not part of this model's config)")
        if tuple(tensor.shape) != rule.shape:
            raise CheckpointError(
                f"{where}: tensor {name} has shape {list(tensor.shape)}; the config and spaces in state.json call for "
                f"{list(rule.shape)}"
            )
        _check_values(name, tensor, rule, where)
    missing = [n for n in rules if n not in tensors and not n.startswith(OPTIONAL_PREFIXES)]
    if missing:
        raise CheckpointError(f"{where}: tensor {missing[0]} is missing")
    for prefix in ("critic_optimizer.", "actor_optimizer.", "cost_critic_optimizer.", "cost_critic."):  # all or none
        wanted = [n for n in rules if n.startswith(prefix)]
        present = [n for n in wanted if n in tensors]
        if present and len(present) != len(wanted):
            absent = next(n for n in wanted if n not in tensors)
            raise CheckpointError(f"{where}: tensor {absent} is missing (the optimiser state is incomplete)")


def _check_values(name: str, tensor: torch.Tensor, rule: TensorRule, where: str) -> None:
    if rule.kind == "rng":
        if tensor.dtype != torch.uint8:
            raise CheckpointError(f"{where}: tensor {name} must be uint8 (got {tensor.dtype})")
        return
    if rule.kind == "obs":
        if tensor.dtype.is_complex:
            raise CheckpointError(f"{where}: tensor {name} has dtype {tensor.dtype}")
        if tensor.dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values")
        return
    if rule.kind == "bound" and tensor.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        return  # the bounds of an integer Box (images: uint8)
    if not tensor.dtype.is_floating_point:
        raise CheckpointError(f"{where}: tensor {name} must be floating point (got {tensor.dtype})")
    if rule.kind == "bound":
        if bool(torch.isnan(tensor).any()):
            raise CheckpointError(f"{where}: tensor {name} holds NaN bounds")
        return
    if not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"{where}: tensor {name} holds NaN or infinite values")
    if rule.kind == "nonneg" and bool((tensor < 0).any()):
        raise CheckpointError(f"{where}: tensor {name} must be >= 0 (holds {float(tensor.min()):g})")


def check_space_bounds(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """A Box's low <= high."""
    for prefix in ("observation_space", "action_space"):
        low, high = tensors.get(f"{prefix}.low"), tensors.get(f"{prefix}.high")
        if low is not None and high is not None and bool((low > high).any()):
            raise CheckpointError(f"{where}: tensor {prefix}.low exceeds {prefix}.high")
