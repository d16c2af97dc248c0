"""CPO and TRPO-Lagrangian on the learner: the step on a real batch against a generic solver with the explicit Fisher
matrix, the line search's invariants, the cost plumbing (info["cost"], cost GAE, episode costs), checkpoints and the
config rules. The step's pure math is tests/test_cpo_math.py's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import trpo.algos.cpo as cpo_module
import trpo.examples.safe_envs  # noqa: F401  (registration)
from trpo import CPO, TRPO, TRPOConfig, TRPOLagrangian, load
from trpo.algos.learner import Learner, PolicyBatch, episode_cost_estimate
from trpo.core.advantages import gae
from trpo.core.cpo import CPOCandidate, CPOCase, CPOStep, cpo_line_search, cpo_rejection_reason, cpo_step
from trpo.core.trust_region import detached_params, flatten, unflatten
from trpo.errors import ConfigError, UserError
from trpo.run.health import HealthMonitor
from trpo.sampling.costs import CostFunction, step_costs
from trpo.sampling.rollout import Batch

optimize = pytest.importorskip("scipy.optimize")

POINT = "trpo.examples.safe_envs:PointHazard-v0"
BAND = "trpo.examples.safe_envs:CartPoleBand-v0"
SMALL: dict[str, Any] = {"n_envs": 4, "n_steps": 64, "hidden_sizes": (8,), "vf_epochs": 1}


def rows_of(agent: Learner) -> list[dict[str, float]]:
    """Train `agent` to its total_steps; the diagnostics row of every update."""
    rows: list[dict[str, float]] = []

    def record(_: Learner, stats: dict[str, float]) -> bool:
        rows.append(stats)
        return True

    agent.learn(callback=record)
    return rows


# ---------------------------------------------------------------- the step on a real batch


def _batch(agent: CPO, seed: int, ep_cost: float, horizon: float = 50.0) -> PolicyBatch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(64, agent.obs_dim, generator=g)
    with torch.no_grad():
        p_k = agent.actor(obs)
        actions = agent.dist.sample(p_k, g)
        log_prob_k = agent.dist.log_prob(p_k, actions)
    adv = torch.randn(64, generator=g)
    cost_adv = torch.randn(64, generator=g) + 0.5 * adv  # correlated with the reward: the constraint can bind
    return PolicyBatch(obs, actions, adv, p_k, log_prob_k, cost_adv, ep_cost, horizon)


def _explicit(agent: CPO, b: PolicyBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """g, b and F + cI by autograd in float64 (F = Hessian of the mean KL(pi_k || pi_theta) at theta_k)."""
    actor = agent.actor.double()
    params = detached_params(actor)
    theta_k = flatten(params).clone()
    obs, p_k = b.obs.double(), b.p_k.double()
    log_prob_k = agent.dist.log_prob(p_k, b.actions)

    def p(theta: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(actor, unflatten(theta, params), (obs,))

    def surrogate(theta: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        return (torch.exp(agent.dist.log_prob(p(theta), b.actions) - log_prob_k) * adv).mean()

    assert b.cost_adv is not None
    g = torch.func.grad(lambda t: surrogate(t, b.adv.double()))(theta_k)
    cost = torch.func.grad(lambda t: surrogate(t, (b.cost_adv - b.cost_adv.mean()).double()))(theta_k) * b.horizon
    fisher = torch.autograd.functional.hessian(lambda t: agent.dist.kl(p_k, p(t)).mean(), theta_k)
    agent.actor.float()
    fisher = fisher + agent.config.cg_damping * torch.eye(len(theta_k), dtype=torch.float64)
    return g.numpy(), cost.numpy(), fisher.numpy()


def _solver(g: np.ndarray, b: np.ndarray, F: np.ndarray, c: float, delta: float, case: CPOCase) -> np.ndarray:
    """SLSQP: argmax g^T x s.t. ½ x^T F x <= delta, c + b^T x <= 0 (infeasible: argmin b^T x in the trust region)."""
    constraints = [{"type": "ineq", "fun": lambda x: delta - 0.5 * x @ F @ x, "jac": lambda x: -(F @ x)}]
    if case is CPOCase.INFEASIBLE:
        objective, jac = (lambda x: b @ x), (lambda x: b)
    else:
        constraints.append({"type": "ineq", "fun": lambda x: -c - b @ x, "jac": lambda x: -b})
        objective, jac = (lambda x: -g @ x), (lambda x: -g)
    res = optimize.minimize(
        objective, np.zeros(len(g)), jac=jac, constraints=constraints, method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 2000},
    )  # fmt: skip
    return np.asarray(res.x)


@pytest.mark.parametrize("env_id", [POINT, BAND])
def test_the_cpo_step_on_a_batch_is_the_solvers_in_every_case(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direction CPO hands to its line search, with CG run to convergence on the Fisher products, is the generic
    solver's optimum of the step problem built from the explicit Hessian of the KL: inactive, active and infeasible."""
    config = TRPOConfig(algo="cpo", hidden_sizes=(6,), cg_iters=200, cg_tol=0.0, fvp_subsample=1.0, cost_limit=10.0)
    agent = CPO(env_id, config, seed=0)
    seen: list[CPOStep] = []
    real = cpo_module.cpo_line_search

    def capture(evaluate, theta_k, step, c, *args):  # type: ignore[no-untyped-def]
        seen.append(step)
        return real(evaluate, theta_k, step, c, *args)

    monkeypatch.setattr(cpo_module, "cpo_line_search", capture)
    probe = _batch(agent, 0, 0.0)
    g, b, F = _explicit(agent, probe)
    delta = config.max_kl
    v, u = np.linalg.solve(F, g), np.linalg.solve(F, b)
    s = float(b @ u)
    trpo_change = math.sqrt(2 * delta / float(g @ v)) * float(b @ v)
    edge = math.sqrt(2 * delta * s)  # the most the trust region can lower the cost
    # c of each case (b's direction is fixed by the batch: the TRPO step's cost change says which side it is on)
    cs = {
        CPOCase.INACTIVE: -abs(trpo_change) - 1.0,
        CPOCase.ACTIVE: -0.5 * trpo_change if trpo_change > 0 else 0.5 * edge,
        CPOCase.INFEASIBLE: 1.5 * edge,
    }
    for case, c in cs.items():
        params = flatten(detached_params(agent.actor)).clone()
        agent.policy_step(_batch(agent, 0, c + config.cost_limit))
        agent.set_actor_params(params)  # every case from the same theta_k
        step = seen[-1]
        assert step.case is case
        assert step.step is not None
        x = step.step.numpy()
        ref = _solver(g, b, F, c, delta, case)
        if case is CPOCase.INFEASIBLE:
            assert float(b @ x) == pytest.approx(float(b @ ref), rel=1e-4)
        else:
            assert float(g @ x) == pytest.approx(float(g @ ref), rel=1e-4)
            assert c + float(b @ x) <= 1e-4 * (abs(c) + edge)
        assert 0.5 * x @ F @ x <= delta * (1 + 1e-4)
        np.testing.assert_allclose(x, ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())


def test_cpo_step_matches_the_closed_form_trpo_step_when_costs_are_far_below_the_limit() -> None:
    config = TRPOConfig(algo="cpo", hidden_sizes=(6,), cg_iters=200, cg_tol=0.0, fvp_subsample=1.0, cost_limit=1e6)
    agent = CPO(POINT, config, seed=1)
    b = _batch(agent, 3, 0.0)
    g, _, F = _explicit(agent, b)
    x_trpo = math.sqrt(2 * config.max_kl / float(g @ np.linalg.solve(F, g))) * np.linalg.solve(F, g)
    theta_k = flatten(detached_params(agent.actor)).double()
    stats = agent.policy_step(b)
    assert stats.cpo_case == 0.0 and stats.cpo_nu == 0.0
    moved = (flatten(detached_params(agent.actor)).double() - theta_k).numpy()
    np.testing.assert_allclose(moved, stats.step_fraction * x_trpo, rtol=2e-3, atol=1e-5)


# ---------------------------------------------------------------- the line search


def _quadratic_search(seed: int, c: float, coef: float = 0.8, iters: int = 10, curvature: float = 1.0):  # type: ignore[no-untyped-def]
    """A step problem and a line search on surrogates with extra curvature (the real KL and cost exceed the model)."""
    rng = np.random.default_rng(seed)
    n = 5
    m = rng.normal(size=(n, n))
    F = m @ m.T + 0.1 * np.eye(n)
    g, b = rng.normal(size=n), rng.normal(size=n)
    delta = 0.01
    t = torch.from_numpy
    step = cpo_step(t(g), t(b), t(np.linalg.solve(F, g)), t(np.linalg.solve(F, b)), c, delta)

    def evaluate(theta: torch.Tensor) -> CPOCandidate:
        x = theta.numpy()
        quad = 0.5 * x @ F @ x
        return CPOCandidate(
            float(g @ x) - curvature * quad, float(b @ x) + curvature * quad, quad * (1 + curvature), 2 * quad
        )

    return step, evaluate, delta


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("c", [-0.5, -0.05, 0.0, 0.05, 0.3, 2.0])
def test_the_line_search_accepts_only_the_first_candidate_the_rule_allows(seed: int, c: float) -> None:
    step, evaluate, delta = _quadratic_search(seed, c)
    theta_k = torch.zeros(5, dtype=torch.float64)
    search = cpo_line_search(evaluate, theta_k, step, c, delta, 0.8, 10)
    assert step.step is not None
    reasons = [
        cpo_rejection_reason(
            kl=cand.kl, reward_gain=cand.reward_gain, cost_change=cand.cost_change, case=step.case, c=c, max_kl=delta
        )
        for cand in (evaluate(theta_k + 0.8**j * step.step) for j in range(10))
    ]
    first = next((j for j, r in enumerate(reasons) if not r), None)
    if first is None:
        assert search.theta is None and search.backtracks == 10 and search.reason == reasons[-1]
        return
    assert search.backtracks == first and search.theta is not None and search.candidate is not None
    torch.testing.assert_close(search.theta, 0.8**first * step.step)
    assert search.candidate.kl <= delta  # never beyond the trust region
    if step.case is CPOCase.INFEASIBLE:
        assert search.candidate.cost_change < 0
    elif c <= 0:  # a feasible start: the accepted candidate's cost surrogate is within the limit
        assert c + search.candidate.cost_change <= 0
    else:
        assert search.candidate.cost_change <= 0


def test_the_full_active_step_is_refused_on_a_curved_cost_and_a_shrunk_one_accepted() -> None:
    hits = 0
    for seed in range(30):
        step, evaluate, delta = _quadratic_search(seed, -0.05, curvature=0.1)
        if step.case is not CPOCase.ACTIVE:
            continue
        search = cpo_line_search(evaluate, torch.zeros(5, dtype=torch.float64), step, -0.05, delta, 0.8, 10)
        assert search.backtracks >= 1  # the full step sits on the linear limit; the curvature pushes it over
        assert search.theta is not None
        hits += 1
    assert hits >= 3


def test_a_rejected_step_tries_no_candidate() -> None:
    calls: list[torch.Tensor] = []
    rejected = cpo_step(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3), 0.0, 0.01)
    assert rejected.case is CPOCase.REJECTED

    def evaluate(theta: torch.Tensor) -> CPOCandidate:
        calls.append(theta)
        return CPOCandidate(1.0, 0.0, 0.0, 0.0)

    search = cpo_line_search(evaluate, torch.zeros(3), rejected, 0.0, 0.01, 0.8, 10)
    assert search.theta is None and search.backtracks == 0 and not calls and search.reason


# ---------------------------------------------------------------- cost plumbing


def test_step_costs_reads_an_ended_episodes_cost_from_final_info() -> None:
    ended = np.array([False, True, False])
    info = {
        "cost": np.array([0.5, 9.0, 0.0]),
        "_cost": np.array([True, True, False]),  # env 1's top-level info is its next episode's reset info
        "final_info": {"cost": np.array([0.0, 2.0, 0.0]), "_cost": np.array([False, True, False])},
        "_final_info": ended,
    }
    np.testing.assert_array_equal(step_costs(info, ended), [0.5, 2.0, 0.0])
    assert step_costs({}, ended) is None
    assert step_costs({"other": 1}, np.zeros(2, dtype=bool)) is None


def test_episode_costs_are_the_sums_of_info_cost_and_the_batch_holds_their_gae() -> None:
    def make() -> gym.Env:  # type: ignore[type-arg]
        return CostFunction(gym.make("CartPole-v1"), lambda obs, action, reward, next_obs, info: 0.5 * float(action))

    agent = CPO(make, TRPOConfig(algo="cpo", **SMALL), seed=0)
    sampler = agent.start_sampler()
    batch = sampler.collect(agent.config.gamma, agent.config.gae_lambda)
    rollout_costs = sampler.raw_costs  # type: ignore[attr-defined]
    assert batch.cost_advantages is not None and batch.cost_returns is not None and batch.cost_values is not None
    assert batch.step_cost_mean == pytest.approx(float(rollout_costs.mean()))
    values = batch.cost_values.view(64, 4)
    # the GAE of the raw costs, recomputed: the bootstrap values are V_C of the next stored state (no truncation in
    # 64 steps of CartPole's 500-step limit)
    with torch.no_grad():
        last = agent.cost_critic(torch.from_numpy(agent.obs_normalizer(sampler.raw_obs)).float())  # type: ignore[misc, attr-defined]
    next_values = torch.cat([values[1:], last.view(1, 4)])
    expected = gae(
        torch.from_numpy(rollout_costs).float(), values, next_values,
        sampler.terminated, sampler.ended, agent.config.gamma, agent.config.gae_lambda,  # type: ignore[attr-defined]
    )  # fmt: skip
    torch.testing.assert_close(batch.cost_advantages.view(64, 4), expected)
    # every finished episode's cost is the sum of its steps' costs (all of them started in this first rollout)
    ended = sampler.ended.numpy()  # type: ignore[attr-defined]
    sums: list[float] = []
    for e in range(4):
        start = 0
        for t in np.flatnonzero(ended[:, e]):
            sums.append(float(rollout_costs[start : t + 1, e].sum()))
            start = t + 1
    assert len(sums) > 4 and any(sums)  # several episodes, some of them with costs
    assert sorted(batch.episode_costs) == pytest.approx(sorted(sums))
    agent.close()


def test_trpo_logs_episode_costs_when_the_environment_reports_them_and_not_otherwise(tmp_path: Path) -> None:
    rows = rows_of(TRPO(POINT, TRPOConfig(total_steps=512, **SMALL), seed=0))
    assert "rollout/ep_cost_mean" in rows[0] and "train/ep_cost" not in rows[0]
    plain = rows_of(TRPO("CartPole-v1", TRPOConfig(total_steps=256, **SMALL), seed=0))
    assert "rollout/ep_cost_mean" not in plain[0] and "alarms/stuck_infeasible" not in plain[0]


def test_a_cost_function_in_python_gives_costs_to_any_environment() -> None:
    env = CostFunction(gym.make("CartPole-v1"), lambda obs, action, reward, next_obs, info: float(action == 1))
    env.reset(seed=0)
    assert env.step(1)[4]["cost"] == 1.0 and env.step(0)[4]["cost"] == 0.0
    named = CostFunction(gym.make("CartPole-v1"), "trpo.examples.safe_envs:cart_outside_band")
    band = gym.make(BAND)
    for x, cost in ((0.0, 0.0), (0.6, 1.0), (-0.7, 1.0), (0.45, 0.0)):
        for env_ in (named, band):
            env_.reset(seed=3)
            env_.unwrapped.state = np.array([x, 0.0, 0.0, 0.0])  # type: ignore[attr-defined]
        assert named.step(0)[4]["cost"] == band.step(0)[4]["cost"] == cost
    with pytest.raises(UserError, match="cost_fn"):
        CostFunction(gym.make("CartPole-v1"), "no_such_module_xyz:f")
    agent = CPO(
        lambda: CostFunction(gym.make("CartPole-v1"), lambda o, a, r, n, i: float(abs(n[0]) > 0.1)),
        TRPOConfig(algo="cpo", total_steps=512, **SMALL),
        seed=0,
    )
    rows = rows_of(agent)
    assert math.isfinite(rows[-1]["train/ep_cost"])


def test_a_constrained_algorithm_on_an_environment_without_costs_is_one_clear_error() -> None:
    agent = CPO("CartPole-v1", TRPOConfig(algo="cpo", total_steps=256, **SMALL), seed=0)
    with pytest.raises(ConfigError, match=r"info\['cost'\]"):
        agent.learn()


def test_episode_cost_estimate_uses_the_latest_episodes_then_the_per_step_rate() -> None:
    empty = Batch(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), step_cost_mean=0.25)
    assert episode_cost_estimate(empty, [], [], 4, 100) == (25.0, 100.0)
    assert episode_cost_estimate(empty, [9.0, 1.0, 2.0, 3.0, 6.0], [10, 20, 30, 40, 50], 4, 100) == (3.0, 35.0)
    batch = Batch(*empty.__dict__.values())
    batch.episode_costs, batch.episode_lengths = [1.0] * 6, [1] * 6  # more than n_envs finished: all of them
    assert episode_cost_estimate(batch, [100.0, *[1.0] * 6], [5, *[1] * 6], 4, 100) == (1.0, 1.0)


# ---------------------------------------------------------------- config, checkpoints, health


def test_constrained_fields_are_refused_for_the_algorithms_that_do_not_read_them() -> None:
    with pytest.raises(ConfigError, match="cost_limit is read only by cpo and trpo-lag"):
        TRPOConfig(cost_limit=5.0).validate()
    with pytest.raises(ConfigError, match="lagrangian_lr is read only by trpo-lag"):
        TRPOConfig(algo="cpo", lagrangian_lr=0.1).validate()
    with pytest.raises(ConfigError, match="cost_limit must be >= 0"):
        TRPOConfig(algo="cpo", cost_limit=-1.0).validate()
    TRPOConfig(algo="cpo", cost_limit=5.0, max_kl=0.01, backtrack_iters=5).validate()
    TRPOConfig(algo="trpo-lag", lagrangian_kp=0.1, backtrack_coef=0.5).validate()


@pytest.mark.parametrize("algo", ["cpo", "trpo-lag"])
def test_checkpoints_keep_the_cost_critic_and_the_multiplier(algo: str, tmp_path: Path) -> None:
    cls = CPO if algo == "cpo" else TRPOLagrangian
    extra = {"lagrangian_kp": 0.1, "lagrangian_init": 1.0} if algo == "trpo-lag" else {}
    agent = cls(POINT, TRPOConfig(algo=algo, total_steps=1024, cost_limit=0.5, **SMALL, **extra), seed=0)
    agent.learn()
    agent.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert type(loaded) is cls
    assert loaded.cost_critic is not None and agent.cost_critic is not None
    for a, b in zip(agent.cost_critic.parameters(), loaded.cost_critic.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert set(loaded.optimizers()) == {"critic_optimizer", "cost_critic_optimizer"}
    assert loaded.optimizers()["cost_critic_optimizer"].state_dict()["state"]
    if algo == "trpo-lag":
        assert loaded.multiplier.state() == agent.multiplier.state()  # type: ignore[attr-defined]
        assert agent.multiplier.value > 0  # type: ignore[attr-defined]
    else:
        assert loaded.infeasible_updates == agent.infeasible_updates  # type: ignore[attr-defined]
    # continuing training from the checkpoint is the same as never stopping
    agent.learn(512)
    loaded.learn(512)
    for a, b in zip(agent.actor.parameters(), loaded.actor.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_a_trpo_checkpoint_without_costs_loads_as_before(tmp_path: Path) -> None:
    agent = TRPO("CartPole-v1", TRPOConfig(total_steps=256, **SMALL), seed=0)
    agent.learn()
    agent.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.cost_critic is None and set(loaded.optimizers()) == {"critic_optimizer"}


def test_stuck_infeasible_fires_after_the_streak_for_constrained_algorithms_only() -> None:
    config = TRPOConfig(algo="cpo", alarm_infeasible_updates=3)
    monitor = HealthMonitor(config, gaussian=True, action_dims=2)
    row = {"train/entropy": 1.0, "train/entropy_change": 0.0, "train/explained_variance": 0.5, "train/return_std": 1.0}
    row.update({"train/return_mean": 0.0, "train/adv_std": 1.0, "train/infeasible": 1.0})
    fired = [monitor.observe(row, u, u)[1] for u in range(1, 5)]
    assert [len(f) for f in fired] == [0, 0, 1, 0] and fired[2][0].name == "stuck_infeasible"
    assert monitor.observe({**row, "train/infeasible": 0.0}, 5, 5)[0]["alarms/stuck_infeasible"] == 0.0
    plain = HealthMonitor(TRPOConfig(), gaussian=True, action_dims=2)
    assert "alarms/stuck_infeasible" not in plain.observe(row, 1, 1)[0]


def test_trpo_lagrangian_raises_lambda_under_violation_and_steps_within_the_trust_region() -> None:
    agent = TRPOLagrangian(POINT, TRPOConfig(algo="trpo-lag", total_steps=2048, cost_limit=0.0, **SMALL), seed=0)
    rows = rows_of(agent)
    lams = [r["train/lagrange_multiplier"] for r in rows]
    assert all(lam >= 0 for lam in lams)
    for r, before in zip(rows, [agent.config.lagrangian_init, *lams], strict=False):
        assert r["train/lagrange_multiplier"] == pytest.approx(max(0.0, before + 0.05 * r["train/cost_violation"]))
        assert r["train/kl"] <= agent.config.max_kl
