"""The pure math of Constrained Policy Optimization (Achiam, Held, Tamar, Abbeel, ICML 2017) and of Lagrangian TRPO.

The CPO step (the paper's Eq. 10, Section 6.1), written as a maximisation over the step x = θ − θ_k:

    max_x  gᵀx    s.t.   ½ xᵀF x ≤ δ,    c + bᵀx ≤ 0

- g: gradient of the reward surrogate (the quantity to increase), b: gradient of the cost surrogate;
- c = J_C(π_k) − d: the current expected cost minus the limit (c > 0: the current policy violates the constraint);
- F: the (damped) Fisher matrix, δ: the trust-region size (`max_kl`).

The caller solves F v = g and F u = b by conjugate gradient; everything here needs only g, b, v, u and the scalars

    q = gᵀF⁻¹g = gᵀv,    r = gᵀF⁻¹b = gᵀu,    s = bᵀF⁻¹b = bᵀu        (float64).

Sign convention: g is the gradient of the surrogate to be *increased*, so the multiplier of the linear constraint is
ν*(λ) = (r + λc)/s. Formulas written for the minimisation min gᵀx (g the gradient of a loss) have r of the opposite
sign, ν* = (λc − r)/s; mixing the two conventions silently gives wrong steps.

Nothing here imports from `trpo`: only torch, math and dataclasses.

Why this file is long (~470 lines): it is a set of small pure functions, each carrying its equation from the paper in
its docstring: the dual's closed form with its cases, the line-search predicate and the two multipliers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

__all__ = [
    "CPOCandidate",
    "CPOCase",
    "CPOSearch",
    "CPOStep",
    "LagrangeMultiplier",
    "PIDLagrangeMultiplier",
    "cpo_accepts",
    "cpo_dual",
    "cpo_line_search",
    "cpo_rejection_reason",
    "cpo_scalars",
    "cpo_step",
    "dual_objective",
    "recovery_step",
    "trpo_step",
]


class CPOCase(str, Enum):
    """Which case of the CPO step problem was solved (the paper's Section 6.1 and Appendix 10.2)."""

    INACTIVE = "inactive"
    """The TRPO step already satisfies the linear constraint: ν* = 0, x* = sqrt(2δ/q) v."""
    ACTIVE = "active"
    """The linear constraint binds and the problem is feasible: x* = (v − ν* u)/λ* from the dual."""
    INFEASIBLE = "infeasible"
    """No x in the trust region satisfies c + bᵀx ≤ 0: the recovery step x = −sqrt(2δ/s) u."""
    REJECTED = "rejected"
    """No step: q = gᵀF⁻¹g ≤ 0 or something is not finite."""


@dataclass(frozen=True)
class CPOStep:
    """The solution of the CPO step problem."""

    step: Tensor | None
    """x (float64, same shape as v), or None when `case` is REJECTED."""
    case: CPOCase
    lam: float
    """λ*, the multiplier of the trust region (INFEASIBLE: 0, by the convention x = −ν u)."""
    nu: float
    """ν*, the multiplier of the linear constraint (INFEASIBLE: sqrt(2δ/s), so that x = −ν u)."""
    q: float
    r: float
    s: float
    reward_change: float
    """Predicted change of the reward surrogate, gᵀx (0 when rejected)."""
    cost_change: float
    """Predicted change of the cost surrogate, bᵀx (0 when rejected); for the cost itself add it to c."""
    reason: str = ""
    """Why the step is degenerate (b ≈ 0, g ∥ b, rejected), empty otherwise."""


# ---------------------------------------------------------------- the scalars and the simple steps


def cpo_scalars(g: Tensor, b: Tensor, v: Tensor, u: Tensor) -> tuple[float, float, float]:
    """q = gᵀF⁻¹g = gᵀv,  r = gᵀF⁻¹b = gᵀu,  s = bᵀF⁻¹b = bᵀu, in float64."""
    g64, b64, v64, u64 = (t.detach().to(torch.float64).reshape(-1) for t in (g, b, v, u))
    return float(g64 @ v64), float(g64 @ u64), float(b64 @ u64)


def trpo_step(v: Tensor, q: float, max_kl: float) -> Tensor:
    """The TRPO step x = sqrt(2δ/q) v, on the edge ½ xᵀF x = δ of the trust region (requires q > 0)."""
    return math.sqrt(2.0 * max_kl / q) * v.detach().to(torch.float64)


def recovery_step(u: Tensor, s: float, max_kl: float) -> Tensor:
    """x = −sqrt(2δ/s) u: the minimiser of bᵀx over ½ xᵀF x ≤ δ (purely decreases the cost; requires s > 0).

    Its predicted cost change is bᵀx = −sqrt(2δ s), the most the trust region allows.
    """
    return -math.sqrt(2.0 * max_kl / s) * u.detach().to(torch.float64)


# ---------------------------------------------------------------- the dual


def dual_objective(lam: float, nu: float, q: float, r: float, s: float, c: float, max_kl: float) -> float:
    """The paper's dual D(λ, ν) = −(q − 2rν + sν²)/(2λ) + νc − λδ, to be maximised over λ > 0, ν ≥ 0.

    By strong duality the optimum of the step problem is max gᵀx = −max D; any (λ > 0, ν ≥ 0) gives the bound
    max gᵀx ≤ −D(λ, ν). At λ = 0 the value is the limit (−inf unless q − 2rν + sν² = 0).
    """
    w = q - 2.0 * r * nu + s * nu * nu
    return -_ratio(w, 2.0 * lam) + nu * c - lam * max_kl


def _ratio(a: float, lam: float) -> float:
    """a/λ for a ≥ 0, λ ≥ 0, with 0/0 = 0 (the limit along the dual's curves) and a/0 = inf."""
    if a <= 0.0:
        return 0.0
    return math.inf if lam <= 0.0 else a / lam


def _project(x: float, low: float, high: float) -> float:
    """Proj_[low, high](x) = max(low, min(x, high))."""
    return max(low, min(x, high))


def cpo_dual(q: float, r: float, s: float, c: float, max_kl: float, *, tol: float = 1e-12) -> tuple[float, float]:
    """(λ*, ν*) maximising the dual D(λ, ν) of a feasible CPO step problem (the paper's Theorem 2, Appendix 10.2).

    Maximising over ν for fixed λ gives ν(λ) = max(0, (λc + r)/s), which splits λ > 0 into

        Λa = {λ > 0 : λc + r > 0}  (ν > 0):  D = f_a(λ) = −½ (A/λ + Bλ) + rc/s,
        Λb = {λ > 0 : λc + r ≤ 0}  (ν = 0):  D = f_b(λ) = −½ (q/λ + 2δλ),

    with A = q − r²/s ≥ 0 and B = 2δ − c²/s. The unconstrained maximisers λ_a = sqrt(A/B) and λ_b = sqrt(q/(2δ))
    are projected onto their intervals, and λ* is the one with the larger dual value:

        λ* = argmax { f_a(Proj_Λa λ_a), f_b(Proj_Λb λ_b) },    ν* = max(0, (λ* c + r)/s).

    The step is then x* = (v − ν* u)/λ*. λ* = 0 happens only when g ∥ b in the F-metric (A ≤ tol·q, A is then
    taken as 0): the step is the limit x* = −(c/s) u (see `cpo_step`).

    Requires q > 0, s > 0, δ > 0 and a feasible problem; raises ValueError when c > 0 and B ≤ 0 (infeasible: the
    dual is unbounded).
    """
    if not (q > 0.0 and s > 0.0 and max_kl > 0.0):
        raise ValueError(f"cpo_dual needs q > 0, s > 0 and max_kl > 0 (q={q}, s={s}, max_kl={max_kl})")
    a = q - r * r / s
    if a <= tol * q:
        a = 0.0  # g is parallel to b in the F-metric (or CG noise made A negative)
    big_b = 2.0 * max_kl - c * c / s
    if c > 0.0 and big_b <= 0.0:
        raise ValueError(f"infeasible CPO problem (c={c} > 0, B={big_b} ≤ 0): use the recovery step")

    # the intervals as [low, high] (None: empty); the boundary between them is λ = −r/c
    lam_a_range: tuple[float, float] | None
    lam_b_range: tuple[float, float] | None
    if c > 0.0:
        lam_a_range = (max(0.0, -r / c), math.inf)
        lam_b_range = (0.0, -r / c) if r < 0.0 else None
    elif c < 0.0:
        lam_a_range = (0.0, -r / c) if r > 0.0 else None
        lam_b_range = (max(0.0, -r / c), math.inf)
    else:
        lam_a_range = (0.0, math.inf) if r > 0.0 else None
        lam_b_range = None if r > 0.0 else (0.0, math.inf)

    def f_a(lam: float) -> float:
        return -0.5 * (_ratio(a, lam) + big_b * lam) + r * c / s

    def f_b(lam: float) -> float:
        return -0.5 * (_ratio(q, lam) + 2.0 * max_kl * lam)

    best_lam, best_value = math.nan, -math.inf
    if lam_a_range is not None:
        lam_a = math.sqrt(a / big_b) if big_b > 0.0 else math.inf  # B ≤ 0: f_a increases, take the top of Λa
        lam = _project(lam_a, *lam_a_range)
        best_lam, best_value = lam, f_a(lam)
    if lam_b_range is not None:
        lam = _project(math.sqrt(q / (2.0 * max_kl)), *lam_b_range)
        value = f_b(lam)
        if value > best_value or math.isnan(best_lam):
            best_lam, best_value = lam, value
    nu = max(0.0, (best_lam * c + r) / s)
    return best_lam, nu


# ---------------------------------------------------------------- the step


def _rejected(q: float, r: float, s: float, reason: str) -> CPOStep:
    return CPOStep(None, CPOCase.REJECTED, math.nan, math.nan, q, r, s, 0.0, 0.0, reason)


def cpo_step(g: Tensor, b: Tensor, v: Tensor, u: Tensor, c: float, max_kl: float, *, tol: float = 1e-12) -> CPOStep:
    """Solve max_x gᵀx s.t. ½ xᵀF x ≤ δ, c + bᵀx ≤ 0, given v = F⁻¹g and u = F⁻¹b (the paper's Section 6.1).

    The cases, tried in this order:

    - REJECTED: anything non-finite, or q = gᵀF⁻¹g ≤ 0 (no ascent direction, or F not positive definite).
    - b ≈ 0 (s = bᵀF⁻¹b ≤ tol): the constraint carries no information. c ≤ 0: INACTIVE, the TRPO step. c > 0:
      INFEASIBLE with a zero step (no direction decreases the cost surrogate; `reason` says so).
    - INACTIVE: the TRPO step x = sqrt(2δ/q) v satisfies c + bᵀx ≤ 0; it is then optimal (ν* = 0,
      λ* = sqrt(q/(2δ))). This includes c > 0 when the TRPO step alone brings the cost under the limit.
    - INFEASIBLE: c > 0 and B = 2δ − c²/s ≤ 0, i.e. min over the trust region of c + bᵀx = c − sqrt(2δ s) > 0.
      The recovery step x = −sqrt(2δ/s) u minimises bᵀx over the trust region (at B = 0 it is the only feasible
      point, so also the exact solution). λ = 0 and ν = sqrt(2δ/s) by convention (x = −ν u).
    - ACTIVE: otherwise. (λ*, ν*) from `cpo_dual`, x* = (v − ν* u)/λ*; the step lies on c + bᵀx = 0 and, unless
      g ∥ b in the F-metric, on the edge of the trust region. When g ∥ b (λ* = 0) the optimum is not unique and
      the step is the smallest optimal one, x* = −(c/s) u (the limit of the formula), with λ* = 0, ν* = r/s.

    c is J_C(π_k) − d; g, b, v, u are flat vectors of any float dtype; the step is float64. `tol` is the threshold
    below which s (absolute) and A = q − r²/s (relative to q) count as zero.
    """
    if not max_kl > 0.0:
        raise ValueError(f"max_kl must be > 0, got {max_kl}")
    q, r, s = cpo_scalars(g, b, v, u)
    if not all(math.isfinite(x) for x in (q, r, s, c)):
        return _rejected(q, r, s, f"non-finite input (q={q}, r={r}, s={s}, c={c})")
    if not (bool(torch.isfinite(v).all()) and bool(torch.isfinite(u).all())):
        return _rejected(q, r, s, "non-finite v = F⁻¹g or u = F⁻¹b")
    if q <= 0.0:
        return _rejected(q, r, s, f"q = gᵀF⁻¹g = {q} ≤ 0: no reward ascent direction")
    g64, b64 = g.detach().to(torch.float64).reshape(-1), b.detach().to(torch.float64).reshape(-1)

    def solved(x: Tensor, case: CPOCase, lam: float, nu: float, reason: str = "") -> CPOStep:
        return CPOStep(x, case, lam, nu, q, r, s, float(g64 @ x.reshape(-1)), float(b64 @ x.reshape(-1)), reason)

    lam_trpo = math.sqrt(q / (2.0 * max_kl))
    x_trpo = trpo_step(v, q, max_kl)
    if s <= tol:
        if c <= 0.0:
            return solved(x_trpo, CPOCase.INACTIVE, lam_trpo, 0.0, f"b ≈ 0 (s = {s}) and c = {c} ≤ 0: TRPO step")
        reason = f"b ≈ 0 (s = {s}) while c = {c} > 0: no direction decreases the cost surrogate, zero step"
        return solved(torch.zeros_like(x_trpo), CPOCase.INFEASIBLE, 0.0, 0.0, reason)
    if c + float(b64 @ x_trpo.reshape(-1)) <= 0.0:
        return solved(x_trpo, CPOCase.INACTIVE, lam_trpo, 0.0)
    if c > 0.0 and 2.0 * max_kl - c * c / s <= 0.0:
        return solved(recovery_step(u, s, max_kl), CPOCase.INFEASIBLE, 0.0, math.sqrt(2.0 * max_kl / s))
    lam, nu = cpo_dual(q, r, s, c, max_kl, tol=tol)
    u64 = u.detach().to(torch.float64)
    if lam > 0.0:
        return solved((v.detach().to(torch.float64) - nu * u64) / lam, CPOCase.ACTIVE, lam, nu)
    reason = "g ∥ b in the F-metric: the optimum is not unique, smallest optimal step −(c/s) u"
    return solved(-(c / s) * u64, CPOCase.ACTIVE, 0.0, max(0.0, r / s), reason)


# ---------------------------------------------------------------- line search


def cpo_rejection_reason(
    *, kl: float, reward_gain: float, cost_change: float, case: CPOCase, c: float, max_kl: float
) -> str:
    """Why the line search rejects a candidate θ = θ_k + βʲ x of a CPO step; the empty string when it accepts.

    kl: mean KL(π_k ‖ π_θ); reward_gain: L(θ) − L(θ_k) of the reward surrogate; cost_change: L_C(θ) − L_C(θ_k) of
    the cost surrogate (an estimate of J_C(π_θ) − J_C(π_k)); case: the case of the step; c = J_C(π_k) − d.

    Every case: all finite and KL ≤ δ. Then (following Achiam's reference implementation and OmniSafe):

    - INFEASIBLE (recovery): the cost surrogate decreases, Δ_C < 0; the reward is free.
    - INACTIVE and ACTIVE: c + Δ_C ≤ max(0, c). From a feasible point (c ≤ 0) that is J_C(π_k) + Δ_C ≤ d: the
      candidate stays within the limit. From a violating point (c > 0) it is Δ_C ≤ 0: the cost does not rise (the
      backtracked steps β x cannot be asked to reach the limit that only the full step reaches to first order).
    - INACTIVE: the reward surrogate improves, gain > 0 (TRPO's own rule).
    - ACTIVE from a feasible point (c ≤ 0): the reward surrogate does not drop, gain ≥ 0 (x = 0 is feasible, so the
      optimum is no worse than staying; with the constraint binding the gain may legitimately be ~0).
      ACTIVE from a violating point (c > 0): no reward condition (x = 0 is not feasible; reward may be traded).
    - REJECTED: never accepted.
    """
    if case is CPOCase.REJECTED:
        return "the CPO step was rejected"
    if not all(math.isfinite(x) for x in (kl, reward_gain, cost_change, c)):
        return "non-finite KL, surrogate gain or cost change"
    if kl > max_kl:
        return f"KL {kl:.3g} > max_kl {max_kl:.3g}"
    if case is CPOCase.INFEASIBLE:
        return (
            "" if cost_change < 0.0 else f"recovery step did not decrease the cost surrogate (Δ_C = {cost_change:.3g})"
        )
    if cost_change > max(-c, 0.0):  # c + Δ_C ≤ max(0, c), without the rounding of c + Δ_C
        return f"cost surrogate c + Δ_C = {c + cost_change:.3g} > max(0, c) = {max(0.0, c):.3g}"
    if case is CPOCase.INACTIVE and not reward_gain > 0.0:
        return f"reward surrogate did not improve (gain {reward_gain:.3g})"
    if case is CPOCase.ACTIVE and c <= 0.0 and reward_gain < 0.0:
        return f"reward surrogate dropped (gain {reward_gain:.3g}) from a feasible point"
    return ""


def cpo_accepts(*, kl: float, reward_gain: float, cost_change: float, case: CPOCase, c: float, max_kl: float) -> bool:
    """True iff `cpo_rejection_reason` finds nothing wrong with the candidate (see there for the rule)."""
    reason = cpo_rejection_reason(
        kl=kl, reward_gain=reward_gain, cost_change=cost_change, case=case, c=c, max_kl=max_kl
    )
    return reason == ""


@dataclass(frozen=True)
class CPOCandidate:
    """What the CPO line search measures of one candidate θ on the batch."""

    reward_gain: float
    """L(θ) − L(θ_k) of the reward surrogate."""
    cost_change: float
    """L_C(θ) − L_C(θ_k) of the cost surrogate, in the units of c (an estimate of J_C(π_θ) − J_C(π_k))."""
    kl: float
    """Mean KL(π_k ‖ π_θ)."""
    kl_max: float
    """Largest per-state KL."""


@dataclass(frozen=True)
class CPOSearch:
    """The outcome of `cpo_line_search`."""

    theta: Tensor | None
    """The accepted parameters, or None (keep θ_k)."""
    candidate: CPOCandidate | None
    """The accepted candidate's measurements (the last one tried when none was accepted; None if none was tried)."""
    backtracks: int
    """Candidates rejected before the accepted one (all tried when none was)."""
    reason: str
    """Why the last candidate was rejected (empty when one was accepted)."""


def cpo_line_search(
    evaluate: Callable[[Tensor], CPOCandidate],
    theta_k: Tensor,
    step: CPOStep,
    c: float,
    max_kl: float,
    backtrack_coef: float,
    backtrack_iters: int,
) -> CPOSearch:
    """Backtracking on the CPO step: θ = θ_k + βʲ x for j = 0 .. backtrack_iters − 1, the first candidate that
    `cpo_rejection_reason` accepts (KL ≤ δ; from a feasible point the cost surrogate within the limit and the reward
    not worse; a recovery step must lower the cost). A REJECTED step tries nothing."""
    if step.step is None or step.case is CPOCase.REJECTED:
        return CPOSearch(None, None, 0, step.reason or "the CPO step was rejected")
    last: CPOCandidate | None = None
    reason = ""
    x = step.step.to(theta_k.dtype)
    for j in range(backtrack_iters):
        theta = theta_k + (backtrack_coef**j) * x
        last = evaluate(theta)
        reason = cpo_rejection_reason(
            kl=last.kl, reward_gain=last.reward_gain, cost_change=last.cost_change, case=step.case, c=c, max_kl=max_kl
        )
        if not reason:
            return CPOSearch(theta, last, j, "")
    return CPOSearch(None, last, backtrack_iters, reason)


# ---------------------------------------------------------------- Lagrangian TRPO


def _check_gain(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be finite and ≥ 0, got {value}")
    return value


def _check_cost(cost: float, limit: float) -> float:
    error = float(cost) - float(limit)
    if not math.isfinite(error):
        raise ValueError(f"cost and limit must be finite (cost={cost}, limit={limit})")
    return error


class LagrangeMultiplier:
    """Projected gradient ascent on the multiplier of max_π J(π) − λ (J_C(π) − d):

        λ ← max(0, λ + lr · (J_C − d))      (then min(λ, max_value) when a ceiling is set).

    It rises while the cost exceeds the limit and decays to 0 while it is below. The penalised objective of the
    policy step is then L − λ L_C (often divided by 1 + λ).
    """

    def __init__(self, lr: float, init: float = 0.0, max_value: float | None = None) -> None:
        self.lr = _check_gain("lr", lr)
        self.max_value = None if max_value is None else _check_gain("max_value", max_value)
        self._value = self._clip(_check_gain("init", init))

    def _clip(self, value: float) -> float:
        value = max(0.0, value)
        return value if self.max_value is None else min(value, self.max_value)

    @property
    def value(self) -> float:
        """λ (≥ 0)."""
        return self._value

    def update(self, cost: float, limit: float) -> float:
        """One step with the measured cost J_C (e.g. the mean episode cost) and the limit d; returns the new λ."""
        self._value = self._clip(self._value + self.lr * _check_cost(cost, limit))
        return self._value

    def state(self) -> dict[str, float]:
        """The mutable state, as JSON-able floats (hyperparameters are configuration, not state)."""
        return {"value": self._value}

    def load_state(self, state: Mapping[str, float]) -> None:
        """Restore what `state` returned."""
        self._value = self._clip(_check_gain("value", state["value"]))


class PIDLagrangeMultiplier:
    """The PID Lagrange multiplier (Stooke, Achiam, Abbeel, ICML 2020, Algorithm 2) on the violation e = J_C − d:

        I ← max(0, I + e),   ∂ = e − e_prev (positive part by default, 0 at the first update),
        λ = max(0, K_P e + K_I I + K_D ∂).

    The integral is kept ≥ 0 (no wind-up below zero while the constraint is satisfied). With a fixed limit d,
    e − e_prev = J_C − J_C,prev; the paper uses its positive part, so that the derivative term only brakes a rising
    cost (`positive_derivative=False` uses Δe itself). K_I alone is the plain Lagrangian update with lr = K_I.
    `init` sets the starting λ through the integral (I₀ = init/K_I), so it persists when K_I > 0.
    """

    def __init__(self, kp: float, ki: float, kd: float, init: float = 0.0, *, positive_derivative: bool = True) -> None:
        self.kp, self.ki, self.kd = _check_gain("kp", kp), _check_gain("ki", ki), _check_gain("kd", kd)
        self.positive_derivative = positive_derivative
        self._value = _check_gain("init", init)
        self._integral = self._value / self.ki if self.ki > 0.0 else 0.0
        self._previous_error = 0.0
        self._updates = 0

    @property
    def value(self) -> float:
        """λ (≥ 0)."""
        return self._value

    @property
    def integral(self) -> float:
        """I = the accumulated violation, ≥ 0."""
        return self._integral

    def update(self, cost: float, limit: float) -> float:
        """One step with the measured cost J_C and the limit d; returns the new λ."""
        error = _check_cost(cost, limit)
        self._integral = max(0.0, self._integral + error)
        derivative = error - self._previous_error if self._updates > 0 else 0.0
        if self.positive_derivative:
            derivative = max(0.0, derivative)
        self._value = max(0.0, self.kp * error + self.ki * self._integral + self.kd * derivative)
        self._previous_error = error
        self._updates += 1
        return self._value

    def state(self) -> dict[str, float]:
        """The mutable state, as JSON-able floats."""
        return {
            "value": self._value,
            "integral": self._integral,
            "previous_error": self._previous_error,
            "updates": float(self._updates),
        }

    def load_state(self, state: Mapping[str, float]) -> None:
        """Restore what `state` returned."""
        value, integral = _check_gain("value", state["value"]), _check_gain("integral", state["integral"])
        previous_error, updates = float(state["previous_error"]), float(state["updates"])
        if not (math.isfinite(previous_error) and updates >= 0.0 and updates == int(updates)):
            raise ValueError(f"invalid PID state {dict(state)}")
        self._value, self._integral = value, integral
        self._previous_error, self._updates = previous_error, int(updates)
