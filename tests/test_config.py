"""Config validation and YAML parsing: every mistake gets a ConfigError naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from trpo import ConfigError, TRPOConfig
from trpo.config.presets import preset_config, preset_names
from trpo.config.schema import load_yaml_config, save_yaml_config


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_kl": 0.0}, "max_kl"),
        ({"max_kl": -0.1}, "max_kl"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.01}, "gamma"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"gae_lambda": 1.5}, "gae_lambda"),
        ({"n_steps": 0}, "n_steps"),
        ({"n_envs": 0}, "n_envs"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"hidden_sizes": (64, 0)}, "hidden_sizes"),
        ({"cg_iters": 0}, "cg_iters"),
        ({"backtrack_coef": 1.0}, "backtrack_coef"),
        ({"backtrack_coef": 0.0}, "backtrack_coef"),
        ({"fvp_subsample": 0.0}, "fvp_subsample"),
        ({"n_steps": 1, "n_envs": 1}, "n_steps * n_envs"),
    ],
)
def test_invalid_values_are_refused_with_the_field_name(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("*", r"\*")):
        TRPOConfig(**changes).validate()


def test_defaults_are_valid_and_round_trip_through_yaml(tmp_path: Path) -> None:
    config = TRPOConfig(hidden_sizes=(32, 16), max_kl=0.02).validate()
    save_yaml_config(config, tmp_path / "c.yaml", header="a comment")
    assert load_yaml_config(tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_kll: 0.1\n", "unknown config key 'max_kll'"),
        ("max_kl: fast\n", "max_kl must be a number"),
        ("n_envs: 2.5\n", "n_envs must be an integer"),
        ("normalize_obs: 1\n", "normalize_obs must be true or false"),
        ("hidden_sizes: 64\n", "hidden_sizes must be a list of integers"),
        ("activation: swish\n", "activation .swish. is not an element-wise torch.nn activation"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_yaml_config(path).validate()  # types are checked on loading, values by validate()


def test_presets_load_and_are_valid() -> None:
    assert {"CartPole-v1", "Pendulum-v1"} <= set(preset_names())
    for name in preset_names():
        config, used = preset_config(name)
        assert used == name
        config.validate()
    assert preset_config("NoSuchEnv-v0") == (TRPOConfig(), None)
