"""RL-Zoo hyperparameter files: an environment's entry of an RL-Zoo TRPO YAML file as trpo config fields.

RL-Zoo (rl-baselines3-zoo) keeps one YAML file per algorithm, keyed by environment id; its TRPO entries
are sb3-contrib's `TRPO` arguments. An entry runs with sb3-contrib's defaults for every key it does not
set, so `zoo_fields` starts from those defaults (`SB3_TRPO_DEFAULTS`) and maps each key to trpo's field:

    target_kl -> max_kl             n_critic_updates -> vf_epochs      cg_max_steps -> cg_iters
    cg_damping -> cg_damping        sub_sampling_factor f -> fvp_subsample 1/f
    batch_size -> vf_minibatch_size learning_rate -> vf_lr             normalize -> normalize_obs/_reward
    n_envs, n_steps, gamma, gae_lambda, use_sde, sde_sample_freq       n_timesteps -> total_steps
    line_search_shrinking_factor -> backtrack_coef                     line_search_max_iter -> backtrack_iters
    normalize_advantage -> normalize_advantages
    policy_kwargs: net_arch -> hidden_sizes (pi/vf: actor_/critic_hidden_sizes), activation_fn -> activation,
                   log_std_init, ortho_init

A key with no trpo equivalent is refused, one line per key. `policy_kwargs` strings (Python expressions
in RL-Zoo files) are read with `ast` as data: only `dict(...)`, literals and `nn.<Activation>` names;
nothing in the file is executed.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trpo.config.safe_yaml import MAX_YAML_BYTES, load_yaml_text
from trpo.core.networks import ACTIVATIONS, activation_class
from trpo.errors import ConfigError

SB3_TRPO_DEFAULTS: dict[str, Any] = {
    "n_envs": 1, "n_steps": 2048, "batch_size": 128, "gamma": 0.99, "gae_lambda": 0.95, "learning_rate": 1e-3,
    "cg_max_steps": 15, "cg_damping": 0.1, "n_critic_updates": 10, "target_kl": 0.01, "sub_sampling_factor": 1,
    "line_search_shrinking_factor": 0.8, "line_search_max_iter": 10, "normalize_advantage": True,
    "use_sde": False, "sde_sample_freq": -1, "normalize": False,
}  # fmt: skip
"""sb3-contrib 2.x `TRPO` defaults (and RL-Zoo's `normalize: false`) for keys an entry does not set."""

SB3_POLICY_DEFAULTS: dict[str, Any] = {
    "net_arch": [64, 64],
    "activation_fn": "tanh",
    "log_std_init": 0.0,
    "ortho_init": True,
}
"""sb3's `MlpPolicy` defaults for on-policy algorithms (separate 64x64 tanh actor and critic)."""

DIRECT = {
    "n_envs": "n_envs", "n_steps": "n_steps", "gamma": "gamma", "gae_lambda": "gae_lambda",
    "target_kl": "max_kl", "n_critic_updates": "vf_epochs", "cg_max_steps": "cg_iters", "cg_damping": "cg_damping",
    "batch_size": "vf_minibatch_size", "learning_rate": "vf_lr", "use_sde": "use_sde",
    "line_search_shrinking_factor": "backtrack_coef", "line_search_max_iter": "backtrack_iters",
    "normalize_advantage": "normalize_advantages", "n_timesteps": "total_steps",
}  # fmt: skip
WHOLE = {"n_envs", "n_steps", "batch_size", "n_critic_updates", "cg_max_steps", "line_search_max_iter", "n_timesteps"}
IGNORED = {"policy": ("MlpPolicy",)}
"""Keys read but with nothing to set: the values trpo runs anyway (anything else is refused)."""


def read_zoo_entry(path: str | Path, env_id: str) -> dict[str, Any]:
    """The entry of `env_id` in an RL-Zoo YAML file (YAML merge keys resolved)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"--zoo file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--zoo file {path} cannot be read: {exc.strerror or exc}") from None
    data = load_yaml_text(raw, f"--zoo file {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"--zoo file {path} must map environment ids to hyperparameters")
    if env_id not in data:
        known = ", ".join(str(k) for k in list(data)[:12])
        raise ConfigError(f"--zoo file {path} has no entry for {env_id} (it has: {known})")
    entry = data[env_id]
    if not isinstance(entry, dict):
        raise ConfigError(f"--zoo file {path}: the entry of {env_id} must be a mapping")
    return entry


def zoo_fields(entry: Mapping[str, Any], source: str = "zoo entry") -> dict[str, Any]:
    """trpo config fields for an RL-Zoo TRPO entry (on sb3-contrib's defaults). Refuses, one line per key,
    every key that has no trpo equivalent."""
    values = {**SB3_TRPO_DEFAULTS, **entry}
    fields: dict[str, Any] = {"fvp_method": "analytic", "sampler": "sync"}
    refused: list[str] = []
    for key, value in values.items():
        if key in DIRECT:
            if key == "learning_rate":
                value = _number(value, key, refused, source)
            elif isinstance(value, float) and value.is_integer() and key in WHOLE:  # `!!float 1e6` step counts
                value = int(value)
            fields[DIRECT[key]] = value
        elif key == "sub_sampling_factor":
            fields["fvp_subsample"] = 1.0 / value if isinstance(value, int | float) and value >= 1 else value
        elif key == "sde_sample_freq":
            fields["sde_sample_freq"] = max(int(value), 0)  # sb3's -1 (never resample) is trpo's 0
        elif key == "normalize":
            fields.update(_normalize(value, refused, source))
        elif key == "policy_kwargs":
            continue  # below, on sb3's policy defaults
        elif key in IGNORED and value in IGNORED[key]:
            continue
        else:
            refused.append(f"{source}: {key}: {value!r} has no trpo equivalent; remove it or set the trpo field")
    fields.update(_policy_fields(values.get("policy_kwargs"), refused, source))
    if refused:
        raise ConfigError("\n".join(refused))
    return {k: v for k, v in fields.items() if v is not None}


def _number(value: Any, key: str, refused: list[str], source: str) -> Any:
    if isinstance(value, str):  # RL-Zoo's "lin_1e-3" schedules
        refused.append(f"{source}: {key}: {value!r} is a schedule; trpo takes a constant (e.g. {key}: 1e-3)")
        return None
    return value


def _normalize(value: Any, refused: list[str], source: str) -> dict[str, bool]:
    """RL-Zoo's `normalize`: true/false, or VecNormalize's kwargs ("{'norm_obs': True, 'norm_reward': False}")."""
    if isinstance(value, bool):
        return {"normalize_obs": value, "normalize_reward": value}
    parsed = _literal(value, "normalize", refused, source) if isinstance(value, str) else value
    if isinstance(parsed, dict) and set(parsed) <= {"norm_obs", "norm_reward", "gamma"}:
        return {
            "normalize_obs": bool(parsed.get("norm_obs", True)),
            "normalize_reward": bool(parsed.get("norm_reward", True)),
        }
    if parsed is not None:
        refused.append(f"{source}: normalize: {value!r} is not true, false or {{norm_obs: ..., norm_reward: ...}}")
    return {}


def _policy_fields(policy_kwargs: Any, refused: list[str], source: str) -> dict[str, Any]:
    """hidden_sizes, activation, log_std_init and ortho_init from `policy_kwargs` (on sb3's defaults)."""
    kwargs = (
        _literal(policy_kwargs, "policy_kwargs", refused, source) if isinstance(policy_kwargs, str) else policy_kwargs
    )
    kwargs = {**SB3_POLICY_DEFAULTS, **(kwargs or {})} if isinstance(kwargs, dict | type(None)) else None
    if kwargs is None:
        refused.append(f"{source}: policy_kwargs: {policy_kwargs!r} is not a dict")
        return {}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key == "net_arch":
            out.update(_net_arch(value, refused, source))
        elif key == "activation_fn":
            written = str(value).removeprefix("nn.")
            try:
                cls = activation_class(written)
                out["activation"] = next((k for k, v in ACTIVATIONS.items() if v is cls), written)  # "relu", not "ReLU"
            except ConfigError as exc:
                refused.append(f"{source}: policy_kwargs.activation_fn: {value}: {exc}")
        elif key in ("log_std_init", "ortho_init"):
            out[key] = value
        else:
            refused.append(f"{source}: policy_kwargs.{key}: {value!r} has no trpo equivalent")
    return out


def _net_arch(value: Any, refused: list[str], source: str) -> dict[str, tuple[int, ...]]:
    """sb3's net_arch: a list of sizes (actor and critic alike), or dict(pi=[...], vf=[...])."""

    def sizes(v: Any) -> tuple[int, ...] | None:
        if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
            return tuple(v)
        return None

    if isinstance(value, dict) and set(value) == {"pi", "vf"}:
        pi, vf = sizes(value["pi"]), sizes(value["vf"])
        if pi is not None and vf is not None:
            return {"hidden_sizes": pi} if pi == vf else {"actor_hidden_sizes": pi, "critic_hidden_sizes": vf}
    elif (shared := sizes(value)) is not None:
        return {"hidden_sizes": shared}
    refused.append(f"{source}: policy_kwargs.net_arch: {value!r} is not a list of layer sizes or dict(pi=..., vf=...)")
    return {}


def _literal(text: str, key: str, refused: list[str], source: str) -> Any:
    """A Python expression of RL-Zoo's files read as data: literals, dict(...) and nn.<Name> only."""
    try:
        return _data(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError) as exc:
        refused.append(f"{source}: {key}: {text!r} is not a data expression trpo reads ({exc})")
        return None


def _data(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_data(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_data(k): _data(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _data(node.operand)
        if isinstance(value, int | float):
            return -value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _data(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "nn":
        return f"nn.{node.attr}"
    raise ValueError(f"{ast.dump(node)[:60]} is not data")
