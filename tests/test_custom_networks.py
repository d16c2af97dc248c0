"""Custom actor and critic modules from Python: exact Fisher products, training, saving and loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import explicit_kl_hessian
from trpo import TRPO, TRPOConfig, UserError, load
from trpo.core.distributions import Categorical, DiagGaussian, Distribution
from trpo.core.networks import Actor, Critic
from trpo.core.trust_region import analytic_fvp, detached_params, double_backprop_fvp
from trpo.errors import ConfigError

SMALL = TRPOConfig(n_envs=2, n_steps=32, vf_epochs=1, vf_minibatch_size=32)


class Residual(nn.Module):
    """Not an MLP: a LayerNorm, a gated residual branch and a bilinear-ish product of two paths."""

    def __init__(self, obs_dim: int, out_dim: int, width: int = 6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(obs_dim)
        self.a, self.b = nn.Linear(obs_dim, width), nn.Linear(obs_dim, width)
        self.out = nn.Linear(width, out_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.norm(obs)
        return self.out(torch.tanh(self.a(x)) * torch.sigmoid(self.b(x)) + self.a(x))


@pytest.mark.parametrize("dist", [DiagGaussian(2), Categorical(3)], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("make_fvp", [analytic_fvp, double_backprop_fvp], ids=["analytic", "double_backprop"])
def test_fvp_of_a_custom_actor_equals_the_explicit_hessian_of_the_mean_kl(dist: Distribution, make_fvp) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    head = dist.param_dim // 2 if isinstance(dist, DiagGaussian) else dist.param_dim
    actor = Actor(4, dist, (), "tanh", log_std_init=-0.3, body=Residual(4, head)).double()
    obs = torch.randn(9, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = explicit_kl_hessian(actor, obs, dist)
    fvp = make_fvp(actor, detached_params(actor), obs, dist)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(h.shape[0], generator=gen, dtype=torch.float64)
        error = torch.linalg.vector_norm(fvp(v) - h @ v) / torch.linalg.vector_norm(h @ v)
        assert float(error) < 1e-6


def test_custom_networks_train_save_and_load(tmp_path: Path) -> None:
    actor_net, critic_net = Residual(3, 1), Residual(3, 1)
    agent = TRPO("Pendulum-v1", SMALL, seed=0, actor_net=actor_net, critic_net=critic_net)
    assert agent.actor.features is actor_net and agent.critic.net is critic_net
    before = [p.detach().clone() for p in actor_net.parameters()]
    agent.learn(3 * SMALL.batch_size)
    assert agent.num_updates == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, actor_net.parameters(), strict=True))  # it learned
    agent.save(tmp_path / "m")
    with pytest.raises(UserError, match="custom actor network; load it in Python"):
        load(tmp_path / "m")
    loaded = load(tmp_path / "m", actor_net=Residual(3, 1), critic_net=Residual(3, 1))
    obs = torch.randn(5, 3).numpy()
    assert (loaded.predict(obs) == agent.predict(obs)).all()
    loaded.learn(SMALL.batch_size)  # continues from the checkpoint
    assert loaded.num_updates == 4


def test_a_custom_critic_may_return_n_or_n_by_1_values() -> None:
    flat = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))  # [N, 1] -> [N]
    for body in (nn.Linear(4, 1), flat):
        critic = Critic(4, (), "tanh", body=body)
        assert critic(torch.zeros(7, 4)).shape == (7,)
    assert Critic(4, (8,), "tanh")(torch.zeros(1, 4)).shape == (1,)  # one state keeps its batch axis


def test_a_custom_network_of_the_wrong_shape_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"must map observations \[N, 4\] to \[N, 2\]; it returned \[2, 5\]"):
        TRPO("CartPole-v1", SMALL, actor_net=nn.Linear(4, 5))
    with pytest.raises(UserError, match=r"custom critic failed on observations of shape \[N, 4\]"):
        TRPO("CartPole-v1", SMALL, critic_net=nn.Linear(7, 1))
    with pytest.raises(UserError, match="cannot be used with a custom actor"):
        TRPO("Pendulum-v1", SMALL.replace(use_sde=True), actor_net=nn.Linear(3, 1))
    with pytest.raises(ConfigError, match="sampler=process builds the actor in its workers"):
        TRPO("CartPole-v1", SMALL.replace(sampler="process", workers=2), actor_net=nn.Linear(4, 2))


def test_a_custom_categorical_actor_learns_cartpole_a_little() -> None:
    config = TRPOConfig(n_envs=4, n_steps=128, max_kl=0.02)
    net = nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, 2))
    agent = TRPO("CartPole-v1", config, seed=0, actor_net=net).learn(20 * config.batch_size)
    rows = agent.start_sampler().stats.returns
    assert sum(rows) / len(rows) > 60  # random play averages about 22
