"""Network options: separate actor and critic sizes, any element-wise torch.nn activation, a linear
schedule of the critic's learning rate."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from trpo import TRPO, TRPOConfig, make_agent
from trpo.cli.main import main
from trpo.errors import ConfigError

SMALL = TRPOConfig(n_envs=2, n_steps=64, eval_episodes=0, checkpoint_every=0)


def linear_shapes(module: nn.Module) -> list[tuple[int, int]]:
    return [tuple(m.weight.shape) for m in module.modules() if isinstance(m, nn.Linear)]  # type: ignore[misc]


def test_actor_and_critic_sizes_apart() -> None:
    agent = TRPO("Pendulum-v1", SMALL.replace(actor_hidden_sizes=(32,), critic_hidden_sizes=(16, 8)), seed=0)
    assert linear_shapes(agent.actor) == [(32, 3), (1, 32)]
    assert linear_shapes(agent.critic) == [(16, 3), (8, 16), (1, 8)]
    default = TRPO("Pendulum-v1", SMALL.replace(hidden_sizes=(24,)), seed=0)
    assert linear_shapes(default.actor) == [(24, 3), (1, 24)] and linear_shapes(default.critic) == [(24, 3), (1, 24)]


def test_worker_processes_build_the_actor_with_its_own_sizes() -> None:
    config = SMALL.replace(actor_hidden_sizes=(32,), critic_hidden_sizes=(16, 8), sampler="process", workers=2)
    agent = TRPO("Pendulum-v1", config, seed=0)
    try:
        agent.learn(256)  # the workers load the learner's actor weights: a size mismatch would fail here
        assert agent.num_updates == 2
    finally:
        agent.close()


def test_any_elementwise_activation_by_name_trains() -> None:
    agent = TRPO("CartPole-v1", SMALL.replace(activation="GELU"), seed=0)
    assert any(isinstance(m, nn.GELU) for m in agent.actor.modules())
    agent.learn(256)
    assert agent.num_updates == 2
    with torch.no_grad():  # the rollout's fast path computes what the module computes
        obs = torch.randn(5, 4)
        from trpo.core.networks import FastForward

        assert torch.allclose(FastForward(agent.actor.features)(obs), agent.actor.features(obs), atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"activation": "Softmax"}, "is not an element-wise torch.nn activation; choose one of"),
        ({"activation": "nope"}, "activation 'nope'"),
        ({"actor_hidden_sizes": (0,)}, "actor_hidden_sizes must be positive integers"),
        ({"critic_hidden_sizes": (8, -1)}, "critic_hidden_sizes must be positive integers"),
        ({"vf_lr_schedule": "cosine"}, "vf_lr_schedule"),
    ],
)
def test_invalid_network_options_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SMALL.replace(**changes).validate()


def test_cli_flags_and_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    argv = ["train", "CartPole-v1", "--total-steps", "256", "--n-envs", "2", "--n-steps", "64", "--quiet"]
    assert main([*argv, "--actor-hidden-sizes", "32", "--activation", "mish", "--run-dir", str(run)]) == 0
    config = (run / "config.yaml").read_text()
    assert "actor_hidden_sizes:\n- 32\n" in config and "activation: mish" in config
    capsys.readouterr()
    assert main([*argv, "--activation", "softmax", "--run-dir", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: activation 'softmax' is not an element-wise") and err.count("\n") == 1


def progress_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_linear_critic_learning_rate_schedule(tmp_path: Path) -> None:
    config = SMALL.replace(vf_lr=1e-3, vf_lr_schedule="linear")
    agent = TRPO("CartPole-v1", config, seed=0).learn(512, run_dir=tmp_path)
    lrs = [float(r["train/vf_lr"]) for r in progress_rows(tmp_path)]
    assert lrs == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])  # 1 - steps before the update / 512
    assert agent.critic_optimizer.param_groups[0]["lr"] == pytest.approx(0.25e-3)
    constant = TRPO("CartPole-v1", SMALL, seed=0)
    constant.learn(128)
    assert constant.critic_optimizer.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("algo", ["trpo", "ppo"])
def test_linear_entropy_bonus_schedule(tmp_path: Path, algo: str) -> None:
    """The bonus falls from ent_coef to 0 over learn()'s steps, and it is the bonus the update uses: the first
    update (coefficient ent_coef) matches a constant-bonus run's, the second (0.75 ent_coef) does not."""
    config = SMALL.replace(algo=algo, ent_coef=0.05)
    for schedule in ("linear", "constant"):
        agent = make_agent("CartPole-v1", config.replace(ent_coef_schedule=schedule), seed=0)
        agent.learn(512, run_dir=tmp_path / schedule)
    linear, constant = progress_rows(tmp_path / "linear"), progress_rows(tmp_path / "constant")
    assert [float(r["train/ent_coef"]) for r in linear] == pytest.approx([0.05, 0.0375, 0.025, 0.0125])
    assert "train/ent_coef" not in constant[0]
    assert linear[0]["train/kl"] == constant[0]["train/kl"]
    assert linear[1]["train/entropy"] != constant[1]["train/entropy"]


def test_a_device_this_machine_lacks_is_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
        SMALL.replace(device="cuda").validate()
    assert TRPO("CartPole-v1", SMALL.replace(device="auto"), seed=0).device == torch.device("cpu")
    assert main(["train", "CartPole-v1", "--device", "cuda:0", "--run-dir", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: device 'cuda:0'") and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_closed_form_critic_head_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """vf_head_ridge > 0: after every update's Adam epochs the critic's last layer is the ridge fit on that batch
    (its penalised gradient vanishes there); 0 leaves Adam alone; a custom critic network is refused."""
    import trpo.algos.learner as learner_module
    from trpo.core import value_fit

    calls: list[float] = []

    def checked_refit(critic: nn.Module, obs: torch.Tensor, returns: torch.Tensor, ridge: float) -> None:
        value_fit.refit_head(critic, obs, returns, ridge)
        head = critic.net[-1]
        critic.zero_grad(set_to_none=True)
        ((critic(obs) - returns).pow(2).mean() + ridge * head.weight.pow(2).sum()).backward()
        calls.append(float(head.weight.grad.abs().max()))

    monkeypatch.setattr(learner_module, "refit_head", checked_refit)
    TRPO("Pendulum-v1", SMALL.replace(vf_head_ridge=1e-3), seed=0).learn(256)
    assert len(calls) == 2 and max(calls) < 1e-5  # float32 critic
    TRPO("Pendulum-v1", SMALL, seed=0).learn(128)
    assert len(calls) == 2
    with pytest.raises(ConfigError, match="vf_head_ridge refits the last layer of the built-in critic"):
        TRPO("Pendulum-v1", SMALL.replace(vf_head_ridge=1e-3), critic_net=nn.Sequential(nn.Linear(3, 1)))
    with pytest.raises(ConfigError, match="vf_head_ridge"):
        SMALL.replace(vf_head_ridge=-1.0).validate()
