"""RL-Zoo TRPO hyperparameter entries as trpo config fields (trpo.config.zoo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trpo.config.schema import config_from_dict
from trpo.config.zoo import read_zoo_entry, zoo_fields
from trpo.errors import ConfigError

ZOO_FILE = """\
CartPole-v1:
  n_envs: 2
  n_timesteps: !!float 1e5
  policy: 'MlpPolicy'
  n_steps: 512
  batch_size: 512
  cg_damping: !!float 1e-3
  gae_lambda: 0.98
  learning_rate: !!float 1e-3
  n_critic_updates: 20

HalfCheetahBulletEnv-v0: &pybullet-defaults
  normalize: true
  n_envs: 2
  policy: 'MlpPolicy'
  batch_size: 128
  n_steps: 1024
  sub_sampling_factor: 2
  cg_max_steps: 25
  cg_damping: 0.1
  n_critic_updates: 20

HalfCheetah-v5:
  <<: *pybullet-defaults
  target_kl: 0.04
  policy_kwargs: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
    net_arch=dict(pi=[256, 256], vf=[256, 256]))"

Pendulum-v1:
  use_sde: True
  sde_sample_freq: 4
  normalize: "{'norm_obs': True, 'norm_reward': False}"

Bad-v0:
  learning_rate: lin_1e-3
  frame_stack: 4
  policy_kwargs: "__import__('os').system('touch /tmp/trpo-zoo-pwned')"
"""


@pytest.fixture
def zoo_file(tmp_path: Path) -> Path:
    path = tmp_path / "trpo.yml"
    path.write_text(ZOO_FILE)
    return path


def config_of(path: Path, env_id: str):  # type: ignore[no-untyped-def]
    return config_from_dict(zoo_fields(read_zoo_entry(path, env_id)))


def test_an_entry_maps_every_key_on_sb3_contribs_defaults(zoo_file: Path) -> None:
    c = config_of(zoo_file, "CartPole-v1")
    assert (c.n_envs, c.n_steps, c.vf_minibatch_size, c.cg_damping, c.gae_lambda, c.vf_lr, c.vf_epochs) == (
        2, 512, 512, 1e-3, 0.98, 1e-3, 20,
    )  # fmt: skip
    assert c.total_steps == 100_000
    # not in the entry: sb3-contrib's TRPO defaults (target_kl 0.01, CG 15, no normalisation, 64x64 tanh)
    assert (c.max_kl, c.cg_iters, c.normalize_obs, c.normalize_reward) == (0.01, 15, False, False)
    assert (c.hidden_sizes, c.activation, c.log_std_init, c.ortho_init, c.fvp_subsample) == (
        (64, 64),
        "tanh",
        0.0,
        True,
        1.0,
    )
    assert (c.backtrack_coef, c.backtrack_iters, c.sampler) == (0.8, 10, "sync")


def test_merge_keys_policy_kwargs_and_sub_sampling(zoo_file: Path) -> None:
    c = config_of(zoo_file, "HalfCheetah-v5")
    assert (c.max_kl, c.n_envs, c.n_steps, c.cg_iters, c.vf_epochs, c.vf_minibatch_size) == (0.04, 2, 1024, 25, 20, 128)
    assert c.normalize_obs and c.normalize_reward and c.fvp_subsample == 0.5
    assert (c.hidden_sizes, c.activation, c.log_std_init, c.ortho_init) == ((256, 256), "relu", -2.0, False)


def test_gsde_and_normalize_kwargs(zoo_file: Path) -> None:
    c = config_of(zoo_file, "Pendulum-v1")
    assert c.use_sde and c.sde_sample_freq == 4 and c.normalize_obs and not c.normalize_reward


def test_keys_without_equivalent_are_refused_one_line_each_and_nothing_runs(zoo_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_of(zoo_file, "Bad-v0")
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any("learning_rate: 'lin_1e-3' is a schedule" in line for line in lines)
    assert any("frame_stack: 4 has no trpo equivalent" in line for line in lines)
    assert any("policy_kwargs" in line and "is not a data expression" in line for line in lines)
    assert not Path("/tmp/trpo-zoo-pwned").exists()


def test_actor_and_critic_sizes_apart_and_unknown_activations() -> None:
    c = config_from_dict(
        zoo_fields({"policy_kwargs": "dict(net_arch=dict(pi=[64], vf=[256, 256]), activation_fn=nn.GELU)"})
    )
    assert (c.actor_sizes, c.critic_sizes, c.activation) == ((64,), (256, 256), "GELU")
    with pytest.raises(ConfigError) as info:
        zoo_fields({"policy_kwargs": "dict(activation_fn=nn.Softmax, net_arch=[0])"})
    text = str(info.value)
    assert "activation_fn: nn.Softmax" in text and "is not an element-wise torch.nn activation" in text
    assert "net_arch: [0]" in text


def test_missing_env_and_unreadable_files(zoo_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no entry for Hopper-v5 \(it has: CartPole-v1"):
        read_zoo_entry(zoo_file, "Hopper-v5")
    with pytest.raises(ConfigError, match="does not exist"):
        read_zoo_entry(tmp_path / "none.yml", "CartPole-v1")
    (tmp_path / "bin.yml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_zoo_entry(tmp_path / "bin.yml", "CartPole-v1")


def test_cli_zoo_file_replaces_the_preset(zoo_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trpo.cli.main import main

    run = tmp_path / "run"
    argv = ["train", "CartPole-v1", "--zoo", str(zoo_file), "--total-steps", "1024", "--quiet", "--run-dir", str(run)]
    assert main(argv) == 0
    assert "preset: RL-Zoo" in capsys.readouterr().err
    config = (run / "config.yaml").read_text()
    assert "n_envs: 2\n" in config and "n_steps: 512\n" in config and "vf_minibatch_size: 512\n" in config
    assert "max_kl: 0.01\n" in config and "normalize_obs: false\n" in config  # sb3-contrib's defaults
    assert main(["train", "Bad-v0", "--zoo", str(zoo_file), "--run-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "frame_stack: 4 has no trpo equivalent" in err and "Traceback" not in err
    assert (
        main(["train", "CartPole-v1", "--zoo", str(zoo_file), "--algo", "ppo", "--run-dir", str(tmp_path / "p")]) == 2
    )
    assert "--zoo reads RL-Zoo's TRPO entries" in capsys.readouterr().err
