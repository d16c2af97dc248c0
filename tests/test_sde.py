"""gSDE: the sampled noise has exactly the state-dependent Gaussian the update assumes."""

from __future__ import annotations

import pytest
import torch

from trpo import TRPO, TRPOConfig, UserError
from trpo.core.distributions import DiagGaussian
from trpo.core.networks import Actor, StateDependentNoise


def make_actor() -> Actor:
    torch.manual_seed(0)
    return Actor(3, DiagGaussian(2), (8, 8), "tanh", log_std_init=-1.0, use_sde=True)


def test_noise_marginal_matches_the_policy_distribution() -> None:
    actor = make_actor()
    obs = torch.randn(1, 3, generator=torch.Generator().manual_seed(1)).expand(4000, 3)
    sde = StateDependentNoise(actor, n_envs=4000, sample_freq=1, generator=torch.Generator().manual_seed(2))
    actions = sde(obs)  # 4000 envs in the same state, each with its own exploration matrix
    with torch.no_grad():
        params = actor(obs[:1])[0]
    mean, std = params[:2], params[2:].exp()
    assert torch.allclose(actions.mean(0), mean, atol=4 * float(std.max()) / 4000**0.5)
    assert torch.allclose(actions.std(0), std, rtol=0.05)


def test_exploration_matrix_is_held_for_sample_freq_steps() -> None:
    actor = make_actor()
    obs = torch.randn(2, 3)
    sde = StateDependentNoise(actor, n_envs=2, sample_freq=3, generator=torch.Generator().manual_seed(0))
    actions = [sde(obs) for _ in range(6)]
    assert torch.equal(actions[0], actions[1]) and torch.equal(actions[1], actions[2])  # same state, same noise
    assert not torch.equal(actions[2], actions[3])
    assert torch.equal(actions[3], actions[5])


def test_rollout_start_draws_the_matrix_its_first_steps_use() -> None:
    """start_rollout draws once; the first sample_freq steps use that draw (no second draw at step 0)."""
    actor = make_actor()
    obs = torch.randn(2, 3)
    sde = StateDependentNoise(actor, n_envs=2, sample_freq=2, generator=torch.Generator().manual_seed(0))
    sde.start_rollout()
    drawn = sde.matrices.clone()
    state = sde.generator.get_state()
    sde(obs)
    sde(obs)
    assert torch.equal(sde.matrices, drawn) and torch.equal(sde.generator.get_state(), state)
    sde(obs)
    assert not torch.equal(sde.matrices, drawn)  # the third step draws the next matrix


def test_sde_update_respects_trust_region() -> None:
    config = TRPOConfig(n_envs=2, n_steps=128, use_sde=True, log_std_init=-1.0)
    agent = TRPO("Pendulum-v1", config, seed=0)
    for _ in range(3):
        batch = agent.start_sampler().collect(config.gamma, config.gae_lambda)
        with torch.no_grad():
            before = agent.actor(batch.obs)
        assert agent.update(batch)["train/line_search_success"] == 1.0  # a real step, not a rejected one
        with torch.no_grad():
            assert float(agent.dist.kl(before, agent.actor(batch.obs)).mean()) <= config.max_kl


def test_sde_needs_box_actions() -> None:
    with pytest.raises(UserError, match="use_sde needs a Box action space"):
        TRPO("CartPole-v1", TRPOConfig(use_sde=True))
