"""Exact math with known answers: CG, Fisher-vector products, step size, line search."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import explicit_kl_hessian
from trpo.core.distributions import Bernoulli, Categorical, DiagGaussian, Distribution, MultiCategorical
from trpo.core.networks import Actor
from trpo.core.trust_region import (
    Candidate,
    analytic_fvp,
    backtracking_line_search,
    conjugate_gradient,
    damped,
    detached_params,
    double_backprop_fvp,
    flatten,
    is_acceptable,
    kl_boundary_step,
    unflatten,
)


def random_spd(n: int, generator: torch.Generator, condition: float = 100.0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    eigenvalues = torch.logspace(0, math.log10(condition), n, dtype=torch.float64)
    return q @ torch.diag(eigenvalues) @ q.T


@pytest.mark.parametrize("n", [1, 5, 30])
def test_cg_matches_linalg_solve_on_spd_systems(n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    a = random_spd(n, gen)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iters=10 * n, tol=1e-12)
    expected = torch.linalg.solve(a, b)
    assert torch.allclose(result.x, expected, rtol=1e-8, atol=1e-10)
    assert result.relative_residual < 1e-12
    assert result.iterations <= 10 * n


def test_cg_runs_in_float64_and_reports_iterations_and_residual() -> None:
    gen = torch.Generator().manual_seed(0)
    a = random_spd(50, gen, condition=1e4)
    b = torch.randn(50, generator=gen, dtype=torch.float64)
    result = conjugate_gradient(lambda v: (a @ v.double()).float(), b.float(), max_iters=3, tol=1e-10)
    assert result.x.dtype == torch.float64
    assert result.iterations == 3  # stopped by the iteration cap, not the tolerance
    residual = float(torch.linalg.vector_norm(b - a @ result.x) / torch.linalg.vector_norm(b))
    assert result.relative_residual == pytest.approx(residual, rel=1e-3)


def test_cg_stops_on_relative_residual() -> None:
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    result = conjugate_gradient(lambda v: a @ v, torch.ones(3, dtype=torch.float64), max_iters=100, tol=1e-10)
    assert result.iterations == 3  # exact in n steps for n distinct eigenvalues
    assert result.relative_residual < 1e-10


def test_cg_reports_a_nonfinite_matrix_product() -> None:
    """A NaN/inf product or right-hand side: finite=False, a NaN residual, the iterate and iteration count
    reached so far (what the learner logs before rejecting the update)."""
    result = conjugate_gradient(lambda v: v * float("nan"), torch.ones(3), max_iters=10, tol=1e-10)
    assert result.finite is False and math.isnan(result.relative_residual) and result.iterations == 1
    assert torch.equal(result.x, torch.zeros(3, dtype=torch.float64))
    bad_b = conjugate_gradient(lambda v: v, torch.tensor([1.0, float("inf")]), 10, 1e-10)
    assert bad_b.finite is False and bad_b.iterations == 0 and math.isnan(bad_b.relative_residual)
    assert torch.equal(bad_b.x, torch.zeros(2, dtype=torch.float64))
    assert conjugate_gradient(lambda v: v, torch.ones(3), 10, 1e-10).finite
    # the product turns NaN at the second iteration: the first iterate is kept
    calls = []

    def nan_on_second_call(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        scale = torch.tensor([1.0, 3.0], dtype=v.dtype)  # A = diag(1, 3): not solved in one step
        return scale * v if len(calls) == 1 else v * float("nan")

    late = conjugate_gradient(nan_on_second_call, torch.tensor([1.0, 2.0]), 10, 1e-30)
    assert late.finite is False and late.iterations == 2 and math.isnan(late.relative_residual)
    # one CG step from 0: alpha = r.r / p.Ap = 5 / 13 along p = b
    assert torch.allclose(late.x, torch.tensor([5 / 13, 10 / 13], dtype=torch.float64))


def test_cg_keeps_the_iterate_where_the_matrix_is_not_positive_definite() -> None:
    """p^T A p <= 0 (a singular or indefinite direction): stop with the iterate so far, never divide by it."""
    for matvec in (lambda v: 0 * v, lambda v: -v):
        result = conjugate_gradient(matvec, torch.ones(3), max_iters=10, tol=1e-10)
        assert result.finite and result.iterations == 1
        assert torch.equal(result.x, torch.zeros(3, dtype=torch.float64))


def test_cg_tolerance_is_relative_to_the_gradient() -> None:
    """A = diag(1, 2), b = 1e3 [1, 1e-4]: one step leaves ||r|| / ||b|| ~ 1e-4 (||r|| ~ 0.1), so tol 1e-3 stops
    it after one iteration whatever the scale of b."""
    f = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    for scale in (1.0, 1e3, 1e-3):
        b = scale * torch.tensor([1.0, 1e-4], dtype=torch.float64)
        result = conjugate_gradient(lambda v: f @ v, b, max_iters=10, tol=1e-3)
        assert result.iterations == 1 and 0 < result.relative_residual < 1e-3


def test_cg_of_zero_gradient_is_zero() -> None:
    result = conjugate_gradient(lambda v: v, torch.zeros(4), max_iters=10, tol=1e-10)
    assert result.iterations == 0 and torch.equal(result.x, torch.zeros(4, dtype=torch.float64))
    assert result.relative_residual == 0.0 and result.finite


DISTRIBUTIONS: dict[str, Distribution] = {
    "gaussian": DiagGaussian(2),
    "categorical": Categorical(3),
    "multi_categorical": MultiCategorical([2, 3]),
    "bernoulli": Bernoulli(3),
}


def tiny_actor(dist: Distribution, use_sde: bool = False) -> Actor:
    torch.manual_seed(0)
    return Actor(4, dist, (5,), "tanh", ortho_init=False, log_std_init=-0.3, use_sde=use_sde).double()


@pytest.mark.parametrize("name", [*DISTRIBUTIONS, "gaussian_sde"])
@pytest.mark.parametrize("make_fvp", [analytic_fvp, double_backprop_fvp])
def test_fvp_equals_explicit_hessian_of_mean_kl(name: str, make_fvp) -> None:  # type: ignore[no-untyped-def]
    dist = DISTRIBUTIONS[name.removesuffix("_sde")]
    actor = tiny_actor(dist, use_sde=name.endswith("_sde"))
    obs = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = explicit_kl_hessian(actor, obs, dist)
    fvp = make_fvp(actor, detached_params(actor), obs, dist)
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(h.shape[0], generator=gen, dtype=torch.float64)
        expected = h @ v
        got = fvp(v)
        assert float(torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected)) < 1e-6


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_analytic_and_double_backprop_fvp_agree(name: str) -> None:
    dist = DISTRIBUTIONS[name]
    actor = tiny_actor(dist)
    obs = torch.randn(11, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = detached_params(actor)
    v = torch.randn(flatten(params).numel(), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = analytic_fvp(actor, params, obs, dist)(v)
    b = double_backprop_fvp(actor, params, obs, dist)(v)
    assert float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)) < 1e-6


def test_kl_boundary_step_lands_on_the_quadratic_boundary() -> None:
    f = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    x = torch.tensor([1.0, -3.0], dtype=torch.float64)
    full = kl_boundary_step(x, f @ x, max_kl=0.01)
    assert full.step is not None
    assert float(0.5 * full.step @ f @ full.step) == pytest.approx(0.01, rel=1e-12)
    assert full.x_f_x == pytest.approx(float(x @ f @ x))


@pytest.mark.parametrize(
    ("x", "f_x", "reason", "x_f_x", "nonfinite"),
    [
        ([1.0, 0.0], [-1.0, 0.0], "x^T F x <= 0", -1.0, False),
        ([0.0, 0.0], [0.0, 0.0], "x^T F x <= 0", 0.0, False),
        ([float("nan"), 1.0], [1.0, 1.0], "non-finite search direction", math.nan, True),
        ([1.0, 1.0], [float("inf"), 1.0], "non-finite search direction", math.inf, True),
        ([float("inf"), 0.0], [0.0, 1.0], "non-finite search direction", math.nan, True),
    ],
)
def test_kl_boundary_step_guards(x: list[float], f_x: list[float], reason: str, x_f_x: float, nonfinite: bool) -> None:
    """A rejected direction: no step, the reason the log shows, x^T F x as computed, and whether it was NaN/inf
    (which the learner counts towards `max_rejected_updates`)."""
    full = kl_boundary_step(torch.tensor(x, dtype=torch.float64), torch.tensor(f_x, dtype=torch.float64), 0.01)
    assert full.step is None and full.reason == reason and full.nonfinite is nonfinite
    assert math.isnan(full.x_f_x) if math.isnan(x_f_x) else full.x_f_x == x_f_x


def quadratic_evaluate(gain_slope: float, kl_curvature: float):  # type: ignore[no-untyped-def]
    """Candidates on a line: gain = slope * t, kl = curvature * t^2 for theta = t * direction."""

    def evaluate(theta: torch.Tensor) -> Candidate:
        t = float(theta[0])
        return Candidate(surrogate_gain=gain_slope * t, kl=kl_curvature * t * t, kl_max=kl_curvature * t * t)

    return evaluate


def test_line_search_accepts_the_largest_feasible_candidate() -> None:
    # kl(t) = t^2, delta = 0.5: t = 1 (j=0) and 0.8 (0.64) are infeasible, 0.64 (0.41) is the first feasible.
    result = backtracking_line_search(
        quadratic_evaluate(1.0, 1.0), torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
        max_kl=0.5, backtrack_coef=0.8, backtrack_iters=10,
    )  # fmt: skip
    assert result.accepted and result.backtracks == 2
    assert float(result.theta[0]) == pytest.approx(0.64)  # type: ignore[index]
    assert result.candidate is not None and result.candidate.kl <= 0.5


def test_line_search_accepts_the_full_step_when_feasible() -> None:
    result = backtracking_line_search(
        quadratic_evaluate(1.0, 0.001),
        torch.zeros(1, dtype=torch.float64),
        torch.ones(1, dtype=torch.float64),
        0.01,
        0.5,
        5,
    )
    assert result.accepted and result.backtracks == 0


def test_line_search_reverts_when_no_candidate_improves() -> None:
    result = backtracking_line_search(
        quadratic_evaluate(-1.0, 0.0),
        torch.zeros(1, dtype=torch.float64),
        torch.ones(1, dtype=torch.float64),
        0.01,
        0.5,
        5,
    )
    assert not result.accepted and result.theta is None and result.backtracks == 5
    # the diagnostics of a failed search are those of the last candidate tried (t = 0.5^4)
    assert result.candidate == Candidate(surrogate_gain=-(0.5**4), kl=0.0, kl_max=0.0)


def test_line_search_reverts_when_every_candidate_violates_kl() -> None:
    result = backtracking_line_search(
        quadratic_evaluate(1.0, 1e6),
        torch.zeros(1, dtype=torch.float64),
        torch.ones(1, dtype=torch.float64),
        0.01,
        0.5,
        3,
    )
    assert not result.accepted


@pytest.mark.parametrize(
    ("candidate", "ok"),
    [
        (Candidate(0.1, 0.01, 0.05), True),  # KL exactly delta is allowed
        (Candidate(0.1, 0.0100001, 0.05), False),
        (Candidate(0.0, 0.001, 0.05), False),  # no improvement
        (Candidate(-0.1, 0.001, 0.05), False),
        (Candidate(float("nan"), 0.001, 0.05), False),
        (Candidate(0.1, float("nan"), 0.05), False),
        (Candidate(0.1, 0.001, float("inf")), False),
    ],
)
def test_acceptance_rule(candidate: Candidate, ok: bool) -> None:
    assert is_acceptable(candidate, max_kl=0.01) is ok


def test_flatten_unflatten_round_trip() -> None:
    like = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    v = torch.arange(10, dtype=torch.float64)
    out = unflatten(v, like)
    assert out["a"].dtype == torch.float32 and out["a"].shape == (2, 3)
    assert torch.equal(flatten(out).double(), v)
    with pytest.raises(ValueError):
        unflatten(torch.zeros(11), like)


def test_damped_adds_c_times_v() -> None:
    """(F + cI) v for an explicit F."""
    f = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    v = torch.tensor([1.0, -2.0], dtype=torch.float64)
    assert torch.equal(damped(lambda u: f @ u, 0.5)(v), torch.tensor([0.5, -6.0], dtype=torch.float64))


@pytest.mark.parametrize("activation", ["GELU", "mish", "Softplus", "PReLU"])
def test_fvp_is_exact_for_any_elementwise_activation(activation: str) -> None:
    """Actors built with a torch.nn activation by name (PReLU: with a parameter of its own) keep the analytic
    Fisher-vector product equal to the explicit Hessian of the mean KL."""
    torch.manual_seed(0)
    dist = DISTRIBUTIONS["gaussian"]
    actor = Actor(4, dist, (5, 3), activation, ortho_init=False, log_std_init=-0.3).double()
    obs = torch.randn(7, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = explicit_kl_hessian(actor, obs, dist)
    fvp = analytic_fvp(actor, detached_params(actor), obs, dist)
    v = torch.randn(h.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float(torch.linalg.vector_norm(fvp(v) - h @ v) / torch.linalg.vector_norm(h @ v)) < 1e-6


def test_fisher_products_come_back_in_the_dtype_of_v() -> None:
    """CG runs in float64 on a float32 actor: each FVP returns float64 (exact to float32 precision)."""
    torch.manual_seed(0)
    dist = DISTRIBUTIONS["gaussian"]
    actor = Actor(4, dist, (5,), "tanh", ortho_init=False)
    obs = torch.randn(7, 4)
    params = detached_params(actor)
    v = torch.randn(flatten(params).numel(), dtype=torch.float64)
    for make_fvp in (analytic_fvp, double_backprop_fvp):
        assert make_fvp(actor, params, obs, dist)(v).dtype == torch.float64
