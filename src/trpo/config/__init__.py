"""Configuration: the fields of a run (`TRPOConfig`), YAML config files, per-environment presets, RL-Zoo files."""

from trpo.config.schema import TRPOConfig, config_from_dict, load_yaml_config, save_yaml_config

__all__ = ["TRPOConfig", "config_from_dict", "load_yaml_config", "save_yaml_config"]
