"""The CPO step against a generic solver (scipy's SLSQP) and closed forms; its line-search rule; the multipliers.

The step problem: max_x gᵀx s.t. ½ xᵀF x ≤ δ and c + bᵀx ≤ 0, with v = F⁻¹g, u = F⁻¹b given.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo.core.cpo import (
    CPOCase,
    CPOStep,
    LagrangeMultiplier,
    PIDLagrangeMultiplier,
    cpo_accepts,
    cpo_dual,
    cpo_rejection_reason,
    cpo_scalars,
    cpo_step,
    dual_objective,
    recovery_step,
    trpo_step,
)

optimize = pytest.importorskip("scipy.optimize")

Array = np.ndarray


# ---------------------------------------------------------------- problems and the reference solver


class Problem:
    """A random step problem: F random SPD (n = 2..6), g, b standard normal, float64."""

    def __init__(self, seed: int, n: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.n = int(rng.integers(2, 7)) if n is None else n
        m = rng.normal(size=(self.n, self.n))
        self.F: Array = m @ m.T + 0.1 * np.eye(self.n)
        self.g: Array = rng.normal(size=self.n)
        self.b: Array = rng.normal(size=self.n)
        self.delta = float(10 ** rng.uniform(-3, 0))
        self.rng = rng

    @property
    def v(self) -> Array:
        return np.linalg.solve(self.F, self.g)

    @property
    def u(self) -> Array:
        return np.linalg.solve(self.F, self.b)

    @property
    def q(self) -> float:
        return float(self.g @ self.v)

    @property
    def r(self) -> float:
        return float(self.g @ self.u)

    @property
    def s(self) -> float:
        return float(self.b @ self.u)

    def trpo_cost_change(self) -> float:
        """bᵀx of the TRPO step x = sqrt(2δ/q) v."""
        return math.sqrt(2 * self.delta / self.q) * float(self.b @ self.v)

    def step(self, c: float) -> CPOStep:
        t = torch.from_numpy
        return cpo_step(t(self.g), t(self.b), t(self.v), t(self.u), c, self.delta)


def slsqp(objective: Callable[[Array], float], gradient: Array, F: Array, delta: float, linear: Array | None, c: float):
    """Minimise a linear objective over ½ xᵀF x ≤ δ (and c + linearᵀx ≤ 0 when `linear` is given) with SLSQP."""
    constraints = [{"type": "ineq", "fun": lambda x: delta - 0.5 * x @ F @ x, "jac": lambda x: -(F @ x)}]
    if linear is not None:
        constraints.append({"type": "ineq", "fun": lambda x: -c - linear @ x, "jac": lambda x: -linear})
    # SLSQP sometimes ends with "Positive directional derivative for linesearch" at the optimum with a tight
    # ftol: the answer is checked for feasibility and compared by value instead of trusting `success`
    res = optimize.minimize(
        objective,
        np.zeros(len(gradient)),
        jac=lambda x: gradient,
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    return res.x


def reference_optimum(p: Problem, c: float) -> Array:
    """argmax gᵀx s.t. ½ xᵀF x ≤ δ, c + bᵀx ≤ 0, by a generic solver."""
    x = slsqp(lambda x: -p.g @ x, -p.g, p.F, p.delta, p.b, c)
    assert 0.5 * x @ p.F @ x <= p.delta * (1 + 1e-7) and c + p.b @ x <= 1e-7 * (1 + abs(c)), "SLSQP infeasible"
    return x


def reference_recovery(p: Problem) -> Array:
    """argmin bᵀx s.t. ½ xᵀF x ≤ δ, by a generic solver."""
    return slsqp(lambda x: p.b @ x, p.b, p.F, p.delta, None, 0.0)


def assert_feasible(p: Problem, x: Array, c: float) -> None:
    scale = abs(c) + math.sqrt(2 * p.delta * p.s)
    assert 0.5 * x @ p.F @ x <= p.delta * (1 + 1e-9)
    assert c + p.b @ x <= 1e-9 * scale


def assert_matches_solver(p: Problem, result: CPOStep, c: float) -> None:
    """Feasible, and gᵀx equal to the solver's optimum within 1e-5 relative."""
    assert result.step is not None
    x = result.step.numpy()
    assert_feasible(p, x, c)
    ref = reference_optimum(p, c)
    assert float(p.g @ x) == pytest.approx(float(p.g @ ref), rel=1e-5, abs=1e-7)
    assert result.reward_change == pytest.approx(float(p.g @ x), rel=1e-12, abs=1e-15)
    assert result.cost_change == pytest.approx(float(p.b @ x), rel=1e-12, abs=1e-15)


def assert_kkt(p: Problem, result: CPOStep, c: float) -> None:
    """g = λ F x + ν b, complementary slackness and strong duality gᵀx = −D(λ*, ν*)."""
    assert result.step is not None
    x = result.step.numpy()
    lam, nu = result.lam, result.nu
    assert lam >= 0 and nu >= 0
    np.testing.assert_allclose(lam * p.F @ x + nu * p.b, p.g, rtol=1e-8, atol=1e-9 * np.abs(p.g).max())
    assert nu * (c + p.b @ x) == pytest.approx(0.0, abs=1e-9 * (1 + nu))
    assert lam * (0.5 * x @ p.F @ x - p.delta) == pytest.approx(0.0, abs=1e-9 * (1 + lam))
    if lam > 0:
        dual = dual_objective(lam, nu, p.q, p.r, p.s, c, p.delta)
        assert -dual == pytest.approx(float(p.g @ x), rel=1e-8, abs=1e-12)


# constructions that land in each case; each returns c for a problem (b flipped first where the case needs r > 0)


def c_inactive_far(p: Problem) -> float:
    """The constraint plane lies outside the trust region on the far side: B < 0 and c < 0."""
    return -2.0 * math.sqrt(2 * p.delta * p.s)


def c_inactive_harmless(p: Problem) -> float:
    """The plane cuts the trust region but the TRPO step stays on the safe side (c < 0, c + bᵀx_trpo < 0)."""
    p.b = -p.b if p.trpo_cost_change() > 0 else p.b
    return -0.5 * math.sqrt(2 * p.delta * p.s)


def c_active_from_feasible(p: Problem) -> float:
    """c < 0 and the TRPO step crosses the plane: c + bᵀx_trpo > 0."""
    p.b = -p.b if p.trpo_cost_change() < 0 else p.b
    return -0.5 * p.trpo_cost_change()


def c_active_from_violation(p: Problem) -> float:
    """c > 0 and some point of the trust region is feasible: c²/s < 2δ."""
    p.b = -p.b if p.trpo_cost_change() < 0 else p.b
    return 0.6 * math.sqrt(2 * p.delta * p.s)


def c_infeasible(p: Problem) -> float:
    """c > 0 and c²/s > 2δ: the whole trust region violates the constraint."""
    return 1.5 * math.sqrt(2 * p.delta * p.s)


SEEDS = range(25)


@pytest.mark.parametrize(
    ("construct", "case"),
    [
        (c_inactive_far, CPOCase.INACTIVE),
        (c_inactive_harmless, CPOCase.INACTIVE),
        (c_active_from_feasible, CPOCase.ACTIVE),
        (c_active_from_violation, CPOCase.ACTIVE),
    ],
)
def test_constructed_feasible_problems_land_in_their_case_and_match_the_solver(
    construct: Callable[[Problem], float], case: CPOCase
) -> None:
    for seed in SEEDS:
        p = Problem(seed)
        c = construct(p)
        result = p.step(c)
        assert result.case is case, (seed, result)
        assert result.reason == ""
        assert_matches_solver(p, result, c)
        assert_kkt(p, result, c)
        if case is CPOCase.INACTIVE:
            assert result.nu == 0.0
            np.testing.assert_allclose(result.step.numpy(), math.sqrt(2 * p.delta / p.q) * p.v, rtol=1e-12)
        else:  # the linear constraint binds, and (g not ∥ b) so does the trust region
            assert result.nu > 0 and result.lam > 0
            assert c + result.cost_change == pytest.approx(0.0, abs=1e-9 * (1 + abs(c)))
            x = result.step.numpy()
            assert 0.5 * x @ p.F @ x == pytest.approx(p.delta, rel=1e-9)


def test_infeasible_problems_take_the_recovery_step_that_minimises_the_cost_over_the_trust_region() -> None:
    for seed in SEEDS:
        p = Problem(seed)
        c = c_infeasible(p)
        result = p.step(c)
        assert result.case is CPOCase.INFEASIBLE, (seed, result)
        assert result.step is not None
        x = result.step.numpy()
        # the solver's minimiser of bᵀx over the trust region (unique: b ≠ 0), and no feasible point exists
        ref = reference_recovery(p)
        assert c + p.b @ ref > 0
        assert float(p.b @ x) == pytest.approx(float(p.b @ ref), rel=1e-5)
        np.testing.assert_allclose(x, ref, rtol=1e-3, atol=1e-4 * np.abs(ref).max())
        assert float(p.b @ x) == pytest.approx(-math.sqrt(2 * p.delta * p.s), rel=1e-12)
        assert 0.5 * x @ p.F @ x == pytest.approx(p.delta, rel=1e-12)
        assert (result.lam, result.nu) == (0.0, pytest.approx(math.sqrt(2 * p.delta / p.s)))
        np.testing.assert_allclose(x, -result.nu * p.u, rtol=1e-12)


def test_random_problems_match_the_solver_whatever_their_case() -> None:
    cases: set[CPOCase] = set()
    for seed in range(100, 220):
        p = Problem(seed)
        c = float(p.rng.normal() * math.sqrt(2 * p.delta * p.s))
        result = p.step(c)
        cases.add(result.case)
        infeasible = c > 0 and c * c / p.s > 2 * p.delta
        assert (result.case is CPOCase.INFEASIBLE) == infeasible
        if infeasible:
            ref = reference_recovery(p)
            assert result.cost_change == pytest.approx(float(p.b @ ref), rel=1e-5)
        else:
            assert_matches_solver(p, result, c)
            assert_kkt(p, result, c)
    assert cases == {CPOCase.INACTIVE, CPOCase.ACTIVE, CPOCase.INFEASIBLE}


def test_the_dual_also_finds_the_trpo_step_when_the_constraint_is_inactive() -> None:
    """cpo_dual on an inactive problem: λ* = sqrt(q/(2δ)) (the TRPO step's λ) and ν* = 0."""
    for seed in SEEDS:
        p = Problem(seed)
        for c in (c_inactive_far(p), c_inactive_harmless(p)):
            lam, nu = cpo_dual(p.q, p.r, p.s, c, p.delta)
            assert (lam, nu) == (pytest.approx(math.sqrt(p.q / (2 * p.delta)), rel=1e-12), 0.0)


def test_the_dual_value_bounds_the_optimum_from_above() -> None:
    """Weak duality: for any λ > 0, ν ≥ 0, −D(λ, ν) ≥ gᵀx*; equality at (λ*, ν*)."""
    rng = np.random.default_rng(7)
    for seed in SEEDS:
        p = Problem(seed)
        c = c_active_from_feasible(p)
        result = p.step(c)
        for lam, nu in zip(rng.uniform(0.01, 10, 50), rng.uniform(0, 10, 50), strict=True):
            assert -dual_objective(lam, nu, p.q, p.r, p.s, c, p.delta) >= result.reward_change - 1e-12


# ---------------------------------------------------------------- closed forms


def step2(g: list[float], b: list[float], c: float, delta: float, f: tuple[float, float] = (1.0, 1.0)) -> CPOStep:
    """The step for F = diag(f) in 2-D, where v and u are exact."""
    gt, bt, ft = (torch.tensor(a, dtype=torch.float64) for a in (g, b, f))
    return cpo_step(gt, bt, gt / ft, bt / ft, c, delta)


@pytest.mark.parametrize("f", [(1.0, 1.0), (2.0, 0.5)])
def test_orthogonal_g_and_b_in_2d_have_the_hand_solution(f: tuple[float, float]) -> None:
    """g = (γ, 0), b = (0, β), F = diag(f1, f2): max γ x1 s.t. ½(f1 x1² + f2 x2²) ≤ δ, c + β x2 ≤ 0.

    The TRPO step (sqrt(2δ/f1), 0) has bᵀx = 0, so c ≤ 0 is inactive; for c > 0 the constraint forces
    x2 = −c/β and the rest of the trust region goes to x1 = sqrt((2δ − f2 c²/β²)/f1) while f2 c²/β² < 2δ, with
    λ = γ/(f1 x1) and ν = λ f2 c/β²; beyond that the problem is infeasible and x = (0, −sqrt(2δ/f2)).
    """
    gamma, beta, delta = 3.0, 2.0, 0.02
    f1, f2 = f
    for c in (-0.5, -1e-3, 0.0):
        result = step2([gamma, 0.0], [0.0, beta], c, delta, f)
        assert result.case is CPOCase.INACTIVE
        assert result.step is not None
        np.testing.assert_allclose(result.step.numpy(), [math.sqrt(2 * delta / f1), 0.0], rtol=1e-15)
        assert (result.lam, result.nu) == (pytest.approx(gamma / math.sqrt(2 * delta * f1)), 0.0)

    c = 0.25  # f2 c²/β² = f2/64 < 2δ = 0.04 for both f
    result = step2([gamma, 0.0], [0.0, beta], c, delta, f)
    x1 = math.sqrt((2 * delta - f2 * c**2 / beta**2) / f1)
    assert result.case is CPOCase.ACTIVE
    assert result.step is not None
    np.testing.assert_allclose(result.step.numpy(), [x1, -c / beta], rtol=1e-12)
    lam = gamma / (f1 * x1)
    assert (result.lam, result.nu) == (pytest.approx(lam, rel=1e-12), pytest.approx(lam * f2 * c / beta**2, rel=1e-12))
    assert result.reward_change == pytest.approx(gamma * x1, rel=1e-12)
    assert result.cost_change == pytest.approx(-c, rel=1e-12)

    c = 1.0  # f2 c²/β² = f2/4 > 2δ
    result = step2([gamma, 0.0], [0.0, beta], c, delta, f)
    assert result.case is CPOCase.INFEASIBLE
    assert result.step is not None
    np.testing.assert_allclose(result.step.numpy(), [0.0, -math.sqrt(2 * delta / f2)], rtol=1e-15)


def test_the_step_at_45_degrees_is_the_projection_onto_the_plane() -> None:
    """F = I, g = (1, 0), b = (1, 1), c = 0: max x1 s.t. x1 + x2 ≤ 0, |x|² ≤ 2δ → x = sqrt(δ)(1, −1),
    and g = λ x + ν b gives ν = ½, λ = 1/(2 sqrt(δ))."""
    delta = 0.01
    result = step2([1.0, 0.0], [1.0, 1.0], 0.0, delta)
    assert result.case is CPOCase.ACTIVE
    assert result.step is not None
    np.testing.assert_allclose(result.step.numpy(), [0.1, -0.1], rtol=1e-12)
    assert (result.lam, result.nu) == (pytest.approx(5.0, rel=1e-12), pytest.approx(0.5, rel=1e-12))


def test_scalars_are_computed_in_float64_from_any_dtype() -> None:
    g = torch.tensor([1.0, 2.0], dtype=torch.float32)
    b = torch.tensor([0.5, -1.0], dtype=torch.float32)
    q, r, s = cpo_scalars(g, b, g / 2, b / 2)
    assert (q, r, s) == (2.5, -0.75, 0.625)
    assert trpo_step(g, 2.5, 0.05).dtype == torch.float64
    np.testing.assert_allclose(recovery_step(b / 2, 0.625, 0.05).numpy(), -0.4 * np.array([0.25, -0.5]), rtol=1e-6)


# ---------------------------------------------------------------- degenerate inputs


def test_zero_cost_gradient_is_inactive_when_satisfied_and_a_stated_infeasible_zero_step_when_violated() -> None:
    g, zero = [1.0, 2.0], [0.0, 0.0]
    for c in (-1.0, 0.0):
        result = step2(g, zero, c, 0.05)
        assert result.case is CPOCase.INACTIVE and "b ≈ 0" in result.reason
        assert result.step is not None
        np.testing.assert_allclose(result.step.numpy(), math.sqrt(0.1 / 5) * np.array(g), rtol=1e-15)
    result = step2(g, zero, 0.3, 0.05)
    assert result.case is CPOCase.INFEASIBLE and "b ≈ 0" in result.reason
    assert result.step is not None
    assert not result.step.any() and result.cost_change == 0.0 and result.reward_change == 0.0
    assert (result.lam, result.nu) == (0.0, 0.0)


def test_c_on_the_boundary() -> None:
    """c = 0: r ≤ 0 (the reward step lowers the cost) is inactive; r > 0 projects onto bᵀx = 0."""
    inactive = step2([1.0, 1.0], [-1.0, 0.5], 0.0, 0.05)
    assert inactive.case is CPOCase.INACTIVE
    for seed in SEEDS:
        p = Problem(seed)
        p.b = -p.b if p.r < 0 else p.b
        result = p.step(0.0)
        assert result.case is CPOCase.ACTIVE
        assert result.cost_change == pytest.approx(0.0, abs=1e-12)
        assert_matches_solver(p, result, 0.0)


def test_b_on_the_trust_region_edge_is_the_unique_feasible_point() -> None:
    """c > 0 with c²/s = 2δ exactly: the only feasible x is the recovery step, with c + bᵀx = 0."""
    delta = 0.125  # 2δ = 0.25, s = 1, c = 0.5
    result = step2([1.0, 1.0], [1.0, 0.0], 0.5, delta)
    assert result.case is CPOCase.INFEASIBLE
    assert result.step is not None
    np.testing.assert_allclose(result.step.numpy(), [-0.5, 0.0], rtol=1e-15)
    assert 0.5 + result.cost_change == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    ("g", "v"),
    [([0.0, 0.0], [0.0, 0.0]), ([1.0, 0.0], [-1.0, 0.0]), ([math.nan, 0.0], [1.0, 0.0]), ([1.0, 0.0], [math.inf, 0.0])],
    ids=["q=0", "q<0", "nan g", "inf v"],
)
def test_no_ascent_direction_or_non_finite_input_is_rejected(g: list[float], v: list[float]) -> None:
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)
    result = cpo_step(torch.tensor(g, dtype=torch.float64), b, torch.tensor(v, dtype=torch.float64), b, -0.1, 0.05)
    assert result.case is CPOCase.REJECTED and result.step is None and result.reason
    assert (result.reward_change, result.cost_change) == (0.0, 0.0)


def test_non_finite_c_is_rejected_and_a_non_positive_trust_region_is_an_error() -> None:
    g = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert cpo_step(g, g, g, g, math.nan, 0.05).case is CPOCase.REJECTED
    with pytest.raises(ValueError, match="max_kl"):
        cpo_step(g, g, g, g, 0.0, 0.0)


def test_g_parallel_to_b_takes_the_smallest_optimal_step() -> None:
    """g = 2b: every feasible x on bᵀx = −c is optimal; the step is −(c/s) u with λ = 0, ν = r/s = 2.
    Anti-parallel (g = −2b): the reward step lowers the cost, inactive."""
    delta = 0.05
    result = step2([2.0, 4.0], [1.0, 2.0], -0.1, delta)
    assert result.case is CPOCase.ACTIVE and "∥" in result.reason
    assert result.step is not None
    np.testing.assert_allclose(result.step.numpy(), [0.02, 0.04], rtol=1e-12)
    assert (result.lam, result.nu) == (0.0, pytest.approx(2.0))
    assert result.reward_change == pytest.approx(0.2)
    assert step2([-2.0, -4.0], [1.0, 2.0], -0.1, delta).case is CPOCase.INACTIVE
    # and against the solver, for a random F
    p = Problem(3)
    p.g = 2.0 * p.b
    c = -0.3 * math.sqrt(2 * p.delta * p.s)
    result = p.step(c)
    assert result.case is CPOCase.ACTIVE
    assert_matches_solver(p, result, c)


@settings(max_examples=300, deadline=None)
@given(
    q=st.sampled_from([0.0, 1e-300, 1e-12, 1.0, 1e12]),
    r=st.sampled_from([-1.0, -1e-12, 0.0, 1e-12, 1.0]),
    s=st.sampled_from([0.0, 1e-300, 1e-12, 1e-6, 1.0, 1e12]),
    c=st.sampled_from([-1.0, -1e-9, 0.0, 1e-9, 1.0]),
)
def test_degenerate_scalars_never_divide_by_zero(q: float, r: float, s: float, c: float) -> None:
    """A 2-D problem with F = I whose scalars are (about) q, r, s: any case, finite outputs, never an exception."""
    # g = (sqrt q, 0); b = (r/sqrt q, sqrt(max(s − r²/q, 0))) gives gᵀb = r, |b|² ≈ s (when q > 0)
    sq = math.sqrt(q)
    b1 = r / sq if q > 0 else 0.0
    g = torch.tensor([sq, 0.0], dtype=torch.float64)
    b = torch.tensor([b1, math.sqrt(max(s - b1 * b1, 0.0))], dtype=torch.float64)
    result = cpo_step(g, b, g, b, c, 0.05)
    if result.case is CPOCase.REJECTED:
        assert q == 0.0
        return
    assert result.step is not None and bool(torch.isfinite(result.step).all())
    assert math.isfinite(result.lam) and math.isfinite(result.nu) and result.lam >= 0 and result.nu >= 0
    assert 0.5 * float(result.step @ result.step) <= 0.05 * (1 + 1e-9)


def test_the_dual_refuses_infeasible_or_degenerate_inputs() -> None:
    with pytest.raises(ValueError, match="infeasible"):
        cpo_dual(1.0, 0.5, 1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="q > 0"):
        cpo_dual(1.0, 0.5, 0.0, -1.0, 0.1)


# ---------------------------------------------------------------- line search


finite = st.floats(-10, 10, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(
    kl=st.floats(0, 0.2),
    gain=finite,
    dc=finite,
    case=st.sampled_from(list(CPOCase)),
    c=finite,
    max_kl=st.floats(1e-4, 0.1),
)
def test_line_search_never_accepts_beyond_the_trust_region_or_above_the_limit(
    kl: float, gain: float, dc: float, case: CPOCase, c: float, max_kl: float
) -> None:
    accepted = cpo_accepts(kl=kl, reward_gain=gain, cost_change=dc, case=case, c=c, max_kl=max_kl)
    reason = cpo_rejection_reason(kl=kl, reward_gain=gain, cost_change=dc, case=case, c=c, max_kl=max_kl)
    assert accepted == (reason == "")
    if not accepted:
        return
    assert kl <= max_kl
    assert case is not CPOCase.REJECTED
    if case is CPOCase.INFEASIBLE:
        assert dc < 0
    elif c <= 0:  # feasible now: the candidate stays within the limit and does not lose reward
        assert c + dc <= 0 and gain >= 0
    else:  # violating now: the cost surrogate does not rise
        assert dc <= 0
    if case is CPOCase.INACTIVE:
        assert gain > 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_line_search_refuses_non_finite_measurements(bad: float) -> None:
    good = {"kl": 0.001, "reward_gain": 0.1, "cost_change": -0.1, "c": -0.5, "max_kl": 0.01}
    assert cpo_accepts(case=CPOCase.INACTIVE, **good)
    for key in ("kl", "reward_gain", "cost_change", "c"):
        assert not cpo_accepts(case=CPOCase.INACTIVE, **{**good, key: bad})


def test_line_search_rules_case_by_case() -> None:
    def ok(case: CPOCase, c: float, gain: float, dc: float, kl: float = 0.005) -> bool:
        return cpo_accepts(kl=kl, reward_gain=gain, cost_change=dc, case=case, c=c, max_kl=0.01)

    assert not ok(CPOCase.INACTIVE, -0.5, 0.1, 0.0, kl=0.0101)  # beyond the trust region
    assert ok(CPOCase.INACTIVE, -0.5, 0.1, 0.4)  # stays under the limit
    assert not ok(CPOCase.INACTIVE, -0.5, 0.1, 0.6)  # crosses the limit
    assert not ok(CPOCase.INACTIVE, -0.5, 0.0, 0.0)  # TRPO's rule: the reward must improve
    assert ok(CPOCase.ACTIVE, -0.5, 0.0, 0.5)  # on the limit, reward unchanged
    assert not ok(CPOCase.ACTIVE, -0.5, -1e-6, 0.0)  # a feasible start must not lose reward
    assert ok(CPOCase.ACTIVE, 0.5, -1.0, -0.1)  # a violating start may trade reward for cost
    assert not ok(CPOCase.ACTIVE, 0.5, 1.0, 1e-6)  # ... but never raise the cost
    assert ok(CPOCase.INFEASIBLE, 2.0, -5.0, -1e-6)  # recovery: any decrease of the cost
    assert not ok(CPOCase.INFEASIBLE, 2.0, 5.0, 0.0)
    assert not ok(CPOCase.REJECTED, -0.5, 1.0, -1.0)
    assert "max(0, c)" in cpo_rejection_reason(
        kl=0.0, reward_gain=1.0, cost_change=0.6, case=CPOCase.INACTIVE, c=-0.5, max_kl=0.01
    )


def test_on_the_exact_quadratic_model_backtracked_steps_are_accepted() -> None:
    """With surrogates that are exactly linear and KL exactly ½ xᵀF x, the step scaled by 0.8 passes in every case
    (the full active step lands on the limit itself, where rounding decides)."""
    for seed in SEEDS:
        for construct in (c_inactive_harmless, c_active_from_feasible, c_active_from_violation, c_infeasible):
            p = Problem(seed)
            c = construct(p)
            result = p.step(c)
            assert result.step is not None
            x = 0.8 * result.step.numpy()
            kl, gain, dc = 0.5 * x @ p.F @ x, float(p.g @ x), float(p.b @ x)
            assert cpo_accepts(kl=kl, reward_gain=gain, cost_change=dc, case=result.case, c=c, max_kl=p.delta), (
                seed,
                construct.__name__,
                cpo_rejection_reason(kl=kl, reward_gain=gain, cost_change=dc, case=result.case, c=c, max_kl=p.delta),
            )


# ---------------------------------------------------------------- Lagrangian multipliers


costs = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(costs=costs, lr=st.floats(0, 1), init=st.floats(0, 10))
def test_lagrange_multiplier_stays_non_negative_and_follows_projected_ascent(
    costs: list[float], lr: float, init: float
) -> None:
    lagrange, expected = LagrangeMultiplier(lr, init), init
    for cost in costs:
        expected = max(0.0, expected + lr * (cost - 25.0))
        assert lagrange.update(cost, 25.0) == pytest.approx(expected) and lagrange.value >= 0


def test_lagrange_multiplier_rises_under_violation_decays_to_zero_and_respects_its_ceiling() -> None:
    lagrange = LagrangeMultiplier(lr=0.1)
    values = [lagrange.update(30.0, 25.0) for _ in range(5)]
    assert values == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5]) and values == sorted(values)
    for _ in range(10):
        lagrange.update(20.0, 25.0)
    assert lagrange.value == 0.0
    capped = LagrangeMultiplier(lr=1.0, max_value=2.0)
    assert capped.update(100.0, 0.0) == 2.0


def test_lagrange_state_round_trips_through_json() -> None:
    a = LagrangeMultiplier(lr=0.05, init=0.3)
    for cost in (30.0, 10.0, 40.0):
        a.update(cost, 25.0)
    b = LagrangeMultiplier(lr=0.05)
    b.load_state(json.loads(json.dumps(a.state())))
    assert b.state() == a.state()
    assert [a.update(c, 25.0) for c in (50.0, 0.0)] == [b.update(c, 25.0) for c in (50.0, 0.0)]


@settings(max_examples=200, deadline=None)
@given(costs=costs, kp=st.floats(0, 2), ki=st.floats(0, 1), kd=st.floats(0, 2), positive=st.booleans())
def test_pid_multiplier_and_its_integral_stay_non_negative(
    costs: list[float], kp: float, ki: float, kd: float, positive: bool
) -> None:
    pid = PIDLagrangeMultiplier(kp, ki, kd, positive_derivative=positive)
    for cost in costs:
        assert pid.update(cost, 25.0) >= 0 and pid.integral >= 0


def test_pid_with_only_an_integral_gain_is_the_plain_lagrangian_update() -> None:
    pid, plain = PIDLagrangeMultiplier(kp=0, ki=0.1, kd=0), LagrangeMultiplier(lr=0.1)
    for cost in (30.0, 40.0, 10.0, 5.0, 0.0, 26.0, 80.0):
        assert pid.update(cost, 25.0) == pytest.approx(plain.update(cost, 25.0))


def test_pid_terms_by_hand() -> None:
    """e = J_C − d; I ← max(0, I + e); ∂ = (e − e_prev)⁺; λ = max(0, K_P e + K_I I + K_D ∂)."""
    pid = PIDLagrangeMultiplier(kp=1.0, ki=0.1, kd=2.0)
    assert pid.update(27.0, 25.0) == pytest.approx(1.0 * 2 + 0.1 * 2 + 0)  # no derivative at the first update
    assert pid.update(30.0, 25.0) == pytest.approx(1.0 * 5 + 0.1 * 7 + 2.0 * 3)
    assert pid.update(26.0, 25.0) == pytest.approx(1.0 * 1 + 0.1 * 8 + 0)  # falling cost: no derivative term
    assert pid.update(0.0, 25.0) == 0.0 and pid.integral == 0.0  # integral clipped at 0, not −17
    signed = PIDLagrangeMultiplier(kp=0.0, ki=0.0, kd=1.0, positive_derivative=False)
    signed.update(30.0, 25.0)
    assert signed.update(28.0, 25.0) == 0.0  # −2 clipped by the outer max
    signed.update(29.0, 25.0)
    assert signed.state()["previous_error"] == 4.0


def test_pid_rises_under_violation_and_decays_to_zero_when_satisfied() -> None:
    pid = PIDLagrangeMultiplier(kp=0.5, ki=0.05, kd=0.1)
    values = [pid.update(30.0, 25.0) for _ in range(10)]
    assert all(b > a for a, b in itertools.pairwise(values))
    for _ in range(200):
        pid.update(20.0, 25.0)
    assert pid.value == 0.0 and pid.integral == 0.0


def test_pid_init_persists_through_the_integral_and_state_round_trips_through_json() -> None:
    pid = PIDLagrangeMultiplier(kp=0.2, ki=0.1, kd=0.3, init=1.5)
    assert pid.value == 1.5 and pid.update(25.0, 25.0) == pytest.approx(1.5)
    for cost in (40.0, 10.0, 33.0):
        pid.update(cost, 25.0)
    other = PIDLagrangeMultiplier(kp=0.2, ki=0.1, kd=0.3)
    other.load_state(json.loads(json.dumps(pid.state())))
    assert other.state() == pid.state()
    assert [pid.update(c, 25.0) for c in (50.0, 45.0, 0.0)] == [other.update(c, 25.0) for c in (50.0, 45.0, 0.0)]


@pytest.mark.parametrize(
    "make",
    [
        lambda: LagrangeMultiplier(lr=-0.1),
        lambda: LagrangeMultiplier(lr=0.1, init=math.nan),
        lambda: PIDLagrangeMultiplier(kp=-1.0, ki=0.0, kd=0.0),
        lambda: PIDLagrangeMultiplier(kp=0.0, ki=math.inf, kd=0.0),
    ],
)
def test_invalid_gains_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_non_finite_costs_and_corrupt_states_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        LagrangeMultiplier(lr=0.1).update(math.nan, 25.0)
    with pytest.raises(ValueError, match="finite"):
        PIDLagrangeMultiplier(1.0, 0.1, 0.0).update(math.inf, 25.0)
    with pytest.raises(ValueError):
        LagrangeMultiplier(lr=0.1).load_state({"value": -1.0})
    with pytest.raises(ValueError):
        PIDLagrangeMultiplier(1.0, 0.1, 0.0).load_state(
            {"value": 1.0, "integral": 0.0, "previous_error": 0.0, "updates": 1.5}
        )
