"""Per-environment presets shipped with the package (presets.yaml)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from trpo.config import TRPOConfig, config_from_dict


@cache
def _all_presets() -> dict[str, dict[str, Any]]:
    text = resources.files("trpo").joinpath("presets.yaml").read_text()
    data = yaml.safe_load(text) or {}
    return {str(k): dict(v or {}) for k, v in data.items()}


def preset_names() -> list[str]:
    return sorted(_all_presets())


def preset_config(env_id: str | None, base: TRPOConfig | None = None) -> tuple[TRPOConfig, str | None]:
    """The config for `env_id`: its preset on top of `base` (or the defaults), and the preset's name."""
    base = base if base is not None else TRPOConfig()
    values = _all_presets().get(env_id or "")
    if values is None:
        return base, None
    return config_from_dict(values, base=base, source=f"preset {env_id}"), env_id
