"""Invariants of one update and of a whole run: trust region respected, reproducible bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import collect
from trpo import TRPO, TRPOConfig
from trpo.core.advantages import normalize
from trpo.core.trust_region import flatten
from trpo.sampling.rollout import Batch


@pytest.mark.parametrize(
    ("env_id", "changes"),
    [
        ("CartPole-v1", {}),
        ("Pendulum-v1", {}),
        ("Pendulum-v1", {"fvp_method": "double_backprop", "fvp_subsample": 0.25}),
        ("CartPole-v1", {"max_kl": 1e-4, "cg_damping": 0.0}),
    ],
)
def test_batch_kl_after_update_is_never_above_delta(env_id: str, changes: dict) -> None:
    config = TRPOConfig(n_envs=2, n_steps=128, **changes)
    agent = TRPO(env_id, config, seed=0)
    accepted = 0
    for _ in range(5):
        batch = collect(agent)
        with torch.no_grad():
            before = agent.actor(batch.obs)
        diagnostics = agent.update(batch)
        with torch.no_grad():
            after = agent.actor(batch.obs)
        kl = float(agent.dist.kl(before, after).mean())
        assert kl <= config.max_kl
        assert kl == pytest.approx(diagnostics["train/kl"], rel=1e-4, abs=1e-9)
        if diagnostics["train/line_search_success"]:
            assert diagnostics["train/surrogate_gain"] > 0
            accepted += 1
        else:
            assert torch.equal(before, after)  # a rejected update keeps theta_k exactly
    assert accepted >= 4  # the bound above is checked on real steps, not on a line search that rejects all


def test_rejected_step_keeps_old_policy() -> None:
    agent = TRPO("CartPole-v1", TRPOConfig(n_envs=2, n_steps=64, backtrack_iters=1), seed=0)
    batch = collect(agent)
    batch.advantages = torch.zeros_like(batch.advantages)  # zero gradient: no improving direction exists
    before = [p.detach().clone() for p in agent.actor.parameters()]
    diagnostics = agent.update(batch)
    assert diagnostics["train/line_search_success"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor.parameters(), strict=True))


def test_same_seed_is_bitwise_reproducible_and_other_seed_differs() -> None:
    config = TRPOConfig(n_envs=2, n_steps=64)

    def weights(seed: int) -> list[torch.Tensor]:
        agent = TRPO("Pendulum-v1", config, seed=seed).learn(640)
        agent.close()
        return [p.detach().clone() for p in [*agent.actor.parameters(), *agent.critic.parameters()]]

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_truncation_uses_value_of_final_observation() -> None:
    """The collector stores V(final_obs) as the bootstrap of a truncated step, not V(reset obs)."""
    config = TRPOConfig(n_envs=1, n_steps=250, normalize_obs=False)
    agent = TRPO("Pendulum-v1", config, seed=0)  # Pendulum truncates at 200 steps
    collector = agent.start_sampler()
    collector.collect(config.gamma, config.gae_lambda)
    truncated = (collector.ended & ~collector.terminated).nonzero()
    assert truncated.shape[0] == 1 and truncated[0, 0].item() == 199
    # the next stored observation is a reset observation, whose value differs from the bootstrap
    assert collector.next_values[199, 0] != collector.values[200, 0]
    assert collector.next_values[198, 0] == collector.values[199, 0]


def test_predict_single_and_batch() -> None:
    agent = TRPO("Pendulum-v1", TRPOConfig(), seed=0)
    obs = np.zeros((5, 3), np.float32)
    assert agent.predict(obs[0]).shape == (1,)
    batch = agent.predict(obs)
    assert batch.shape == (5, 1)
    assert np.all(np.abs(agent.predict(obs * 0 + 100.0, deterministic=False)) <= 2.0)  # clipped to bounds


def test_entropy_bonus_known_answer_step() -> None:
    """With zero advantages and ent_coef > 0 the objective is ent_coef * sum(log_std) + const: the natural
    step moves only log_std, by sqrt(2 delta / (d (2 + c))) per dimension (Fisher 2 per log std, damping c),
    and the line search accepts it at full length. Without the bonus no improving step exists."""
    for ent_coef in (0.0, 0.01):
        config = TRPOConfig(n_envs=2, n_steps=64, ent_coef=ent_coef, fvp_subsample=1.0)
        agent = TRPO("Pendulum-v1", config, seed=0)
        batch = collect(agent)
        batch.advantages = torch.zeros_like(batch.advantages)
        assert agent.actor.log_std is not None
        log_std_before = agent.actor.log_std.detach().clone()
        mean_net = [p for name, p in agent.actor.named_parameters() if name != "log_std"]
        mean_net_before = [p.detach().clone() for p in mean_net]
        diagnostics = agent.update(batch)
        assert all(torch.equal(a, b) for a, b in zip(mean_net_before, mean_net, strict=True))
        if ent_coef == 0.0:
            assert diagnostics["train/line_search_success"] == 0.0
            assert torch.equal(agent.actor.log_std, log_std_before)
            continue
        d = log_std_before.numel()
        expected = np.sqrt(2 * config.max_kl / (d * (2 + config.cg_damping)))
        assert diagnostics["train/line_search_success"] == 1.0 and diagnostics["train/backtracks"] == 0.0
        step = (agent.actor.log_std.detach() - log_std_before).double()
        assert torch.allclose(step, torch.full_like(step, expected), rtol=1e-5)
        assert diagnostics["train/kl"] <= config.max_kl


def actor_theta(agent: TRPO) -> torch.Tensor:
    return flatten([p.detach() for p in agent.actor.parameters()]).double()


def surrogate(agent: TRPO, batch: Batch, log_prob_k: torch.Tensor, adv: torch.Tensor) -> float:
    """L(theta) = mean[pi_theta(a|s) / pi_k(a|s) A], written here from the paper, not from the learner."""
    with torch.no_grad():
        ratio = torch.exp(agent.dist.log_prob(agent.actor(batch.obs), batch.actions) - log_prob_k)
    return float((ratio * adv).mean())


def policy_gradient(agent: TRPO, batch: Batch, adv: torch.Tensor) -> torch.Tensor:
    """g = mean[grad log pi(a|s) A] at theta_k: the gradient of L at theta_k (the ratio is 1 there)."""
    params = list(agent.actor.parameters())
    objective = (agent.dist.log_prob(agent.actor(batch.obs), batch.actions) * adv).mean()
    return flatten(torch.autograd.grad(objective, params)).double()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_accepted_step_improves_the_papers_surrogate_by_the_logged_gain(env_id: str) -> None:
    """The gain of every accepted step, recomputed from the definition of L with normalised advantages, is
    positive and equals train/surrogate_gain (a flipped sign or an inverted ratio in the learner's L fails)."""
    agent = TRPO(env_id, TRPOConfig(n_envs=2, n_steps=128, fvp_subsample=1.0), seed=0)
    accepted = 0
    for _ in range(4):
        batch = collect(agent)
        adv = normalize(batch.advantages)
        with torch.no_grad():
            log_prob_k = agent.dist.log_prob(agent.actor(batch.obs), batch.actions)
        before = surrogate(agent, batch, log_prob_k, adv)
        diagnostics = agent.update(batch)
        if diagnostics["train/line_search_success"]:
            accepted += 1
            gain = surrogate(agent, batch, log_prob_k, adv) - before
            assert gain > 0
            assert gain == pytest.approx(diagnostics["train/surrogate_gain"], rel=1e-4)
    assert accepted >= 3


def test_heavy_damping_turns_the_step_into_the_policy_gradient() -> None:
    """(F + cI) x = g with c >> |F|: x -> g / c, so the accepted step points along the policy gradient
    (cosine 1). Without the damping (or with the surrogate's sign flipped) it does not."""
    cosines = {}
    for damping in (1e6, 1e-3):
        agent = TRPO("CartPole-v1", TRPOConfig(n_envs=2, n_steps=128, fvp_subsample=1.0, cg_damping=damping), seed=0)
        batch = collect(agent)
        g = policy_gradient(agent, batch, normalize(batch.advantages))
        theta_k = actor_theta(agent)
        diagnostics = agent.update(batch)
        assert diagnostics["train/line_search_success"] == 1.0
        step = actor_theta(agent) - theta_k
        cosines[damping] = float(step @ g / (step.norm() * g.norm()))
    assert cosines[1e6] > 0.9999
    assert cosines[1e-3] < 0.99  # the natural gradient is another direction: the test can tell them apart


def test_a_constant_added_to_the_advantages_does_not_change_the_step() -> None:
    """Advantages are centred (and scaled) before the surrogate: A and 3 A + 5 give the same policy step."""
    thetas = []
    for scale, shift in ((1.0, 0.0), (3.0, 5.0)):
        agent = TRPO("Pendulum-v1", TRPOConfig(n_envs=2, n_steps=128, fvp_subsample=1.0), seed=0)
        batch = collect(agent)
        batch.advantages = scale * batch.advantages + shift
        assert agent.update(batch)["train/line_search_success"] == 1.0
        thetas.append(actor_theta(agent))
    assert torch.allclose(thetas[0], thetas[1], rtol=1e-4, atol=1e-6)


def test_fisher_subsample_is_a_uniform_random_subset() -> None:
    """fvp_subsample picks a fresh random subset each update, every state equally likely (not the first k)."""
    agent = TRPO("CartPole-v1", TRPOConfig(n_envs=2, n_steps=64, fvp_subsample=0.25), seed=0)
    n, draws = 40, 2000
    counts = torch.zeros(n)
    subsets = set()
    for _ in range(draws):
        idx = agent.fvp_indices(n)
        assert idx.shape == (10,) and len(set(idx.tolist())) == 10 and int(idx.min()) >= 0 and int(idx.max()) < n
        counts[idx] += 1
        subsets.add(tuple(sorted(idx.tolist())))
    assert len(subsets) > draws // 2
    # each state is drawn with probability k / n = 1/4: 500 expected, binomial std ~19
    assert float(counts.min()) > 400 and float(counts.max()) < 600


@pytest.mark.parametrize("bad", [np.zeros(2), np.zeros(6), np.zeros((4, 2)), np.zeros((0, 3)), np.zeros((2, 3, 1))])
def test_predict_refuses_an_observation_of_the_wrong_shape(bad: np.ndarray) -> None:
    from trpo.errors import ObservationError

    agent = TRPO("Pendulum-v1", TRPOConfig(), seed=0)  # observations of shape (3,)
    with pytest.raises(ObservationError, match=r"takes one observation of shape \(3,\) or a batch of shape \(N, 3\)"):
        agent.predict(bad)
    with pytest.raises(ObservationError, match="numeric"):
        agent.predict(np.array(["a", "b", "c"]))
    assert agent.predict([0.0, 1.0, 0.5]).shape == (1,)  # a list is fine
