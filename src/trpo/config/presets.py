"""Per-environment presets shipped with the package (presets.yaml), per algorithm.

Top-level entries `<env id>: {...}` are TRPO's presets. `algorithms: {<algo>: {<env id>: {...}}}` holds
another algorithm's own presets; each is complete on top of TRPOConfig's defaults. An algorithm without
an entry for the environment uses the entry of the algorithm whose hyperparameters it shares
(`SHARES_PRESETS`: NPG is TRPO without the line search, so the same delta and rollouts are its
controlled counterpart; CPO and TRPO-Lagrangian are TRPO with a constraint, so TRPO's trust region and rollouts
fit them too), or none.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from trpo.config.schema import ENV_KEYS, FIELD_NAMES, TRPOConfig, config_from_dict, reads

ALGORITHMS_KEY = "algorithms"
SHARES_PRESETS = {"npg": "trpo", "cpo": "trpo", "trpo-lag": "trpo"}
WRAPPERS_KEY = "env_wrappers"
"""An entry's default wrappers (e.g. Atari preprocessing and frame stacking): `trpo train ENV_ID` applies
them when the user gives no --wrapper, and records them in config.yaml like any wrapper."""
ENV_KWARGS_KEY = "env_kwargs"
"""An entry's default `gymnasium.make` kwargs (e.g. which terms the observation holds): `trpo train ENV_ID`,
`trpo compare`, `trpo tune` and `TRPO(ENV_ID)` pass them under the user's own (a key the user gives wins);
config.yaml records them."""


@cache
def _all_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """{algo: {env id: values}} from presets.yaml."""
    text = resources.files("trpo.config").joinpath("presets.yaml").read_text()
    data = yaml.safe_load(text) or {}
    by_algo: dict[str, dict[str, dict[str, Any]]] = {"trpo": {}}
    for key, values in data.items():
        if key == ALGORITHMS_KEY:
            for algo, entries in (values or {}).items():
                by_algo.setdefault(str(algo), {}).update({str(k): dict(v or {}) for k, v in (entries or {}).items()})
        else:
            by_algo["trpo"][str(key)] = dict(values or {})
    return by_algo


def _env_entry(env_id: str | None, key: str) -> Any:
    """`key` (an environment entry) of `env_id`'s preset, any algorithm's entry; None without."""
    for entries in _all_presets().values():
        value = entries.get(env_id or "", {}).get(key)
        if value:
            return value
    return None


def preset_wrappers(env_id: str | None) -> list[Any]:
    """The default wrappers of `env_id`'s preset (any algorithm's entry), as YAML data; [] without."""
    return list(_env_entry(env_id, WRAPPERS_KEY) or [])


def preset_env_kwargs(env_id: str | None) -> dict[str, Any]:
    """The default `gymnasium.make` kwargs of `env_id`'s preset (any algorithm's entry); {} without."""
    return dict(_env_entry(env_id, ENV_KWARGS_KEY) or {})


def preset_names(algo: str = "trpo") -> list[str]:
    """Environments with a preset for `algo` (its own or a shared one)."""
    presets = _all_presets()
    return sorted({*presets.get(algo, {}), *presets.get(SHARES_PRESETS.get(algo, algo), {})})


def preset_config(
    env_id: str | None, base: TRPOConfig | None = None, algo: str | None = None
) -> tuple[TRPOConfig, str | None]:
    """The config of `algo` (default: base.algo) for `env_id`: its preset on top of `base` (or the
    defaults), with `algo` set, and the preset's name ("<env id>", or "<env id> (<algo>)" for an
    algorithm's own entry; None without a preset)."""
    base = base if base is not None else TRPOConfig()
    algo = algo or base.algo
    base = base.replace(algo=algo)
    presets = _all_presets()
    own = presets.get(algo, {}).get(env_id or "")
    if own is not None:
        own = {k: v for k, v in own.items() if k not in ENV_KEYS}
        name = env_id if algo == "trpo" else f"{env_id} ({algo})"
        return config_from_dict(own, base=base, source=f"preset {name}"), name
    shared = presets.get(SHARES_PRESETS.get(algo, ""), {}).get(env_id or "")
    if shared is None:
        return base, None
    name = f"{env_id} ({SHARES_PRESETS[algo]}'s, shared by {algo})"
    read = {k: v for k, v in shared.items() if k not in ENV_KEYS and (k not in FIELD_NAMES or reads(algo, k))}
    return config_from_dict(read, base=base, source=f"preset {env_id}"), name
