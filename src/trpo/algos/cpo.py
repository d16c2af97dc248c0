"""CPO: Constrained Policy Optimization (Achiam, Held, Tamar, Abbeel, ICML 2017) on TRPO's trust-region machinery.

One update (docs/safe-rl.md maps each line to the paper):

    g = ∇L(θ_k)                 reward surrogate, normalised advantages (as TRPO)
    b = H ∇L_C(θ_k)             cost surrogate, centred cost advantages, scaled to episode-cost units by H
    v = CG(F, g),  u = CG(F, b) the same damped Fisher products (one subsample) for both solves
    c = J_C(π_k) − d            the measured episode cost minus the limit
    x = cpo_step(g, b, v, u, c, δ)         inactive → TRPO step, active → the dual's solution, infeasible → recovery
    θ = θ_k + βʲ x              the first j that `cpo_rejection_reason` accepts (KL ≤ δ, cost within the limit, ...)

The math is `trpo.core.cpo`'s (pure functions with exact tests); this module only measures g, b, F and the
candidates on the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import Tensor
from torch.func import functional_call

from trpo.algos.learner import Learner, PolicyBatch
from trpo.algos.npg import TrustRegionLearner
from trpo.core.cpo import CPOCandidate, CPOCase, CPOStep, cpo_line_search, cpo_step
from trpo.core.trust_region import CGResult, conjugate_gradient, detached_params, flatten, unflatten

CASE_CODES = {CPOCase.INACTIVE: 0.0, CPOCase.ACTIVE: 1.0, CPOCase.INFEASIBLE: 2.0, CPOCase.REJECTED: 3.0}
"""train/cpo_case in progress.csv: 0 inactive (TRPO step), 1 active (dual solution), 2 infeasible (recovery step),
3 rejected (no step)."""


@dataclass(frozen=True)
class CPOStepStats:
    """One CPO step. The trust-region and line-search keys are TRPO's (same names), then the constraint's."""

    kl: float
    """Mean KL(pi_k || pi_new) of the applied step (0 when none was applied)."""
    kl_over_delta: float
    kl_max: float
    surrogate_gain: float
    """Reward surrogate L(theta_new) - L(theta_k)."""
    expected_gain: float
    """g^T x of the applied step (the linear model's prediction of that gain)."""
    gain_ratio: float
    grad_norm: float
    cg_iters: int
    cg_residual: float
    xFx: float
    """x^T F x of the CPO step x (2 delta on the trust region's edge)."""
    step_norm: float
    step_rejected: bool
    nonfinite_rejected: bool
    backtracks: int
    step_fraction: float
    line_search_success: bool
    # --- the constraint
    ep_cost: float
    """J_C(pi_k): the mean undiscounted cost of the batch's finished episodes."""
    cost_violation: float
    """c = J_C(pi_k) - cost_limit (> 0: pi_k violates the constraint)."""
    cost_surrogate: float
    """c + the cost surrogate's change: the predicted J_C(pi_new) - cost_limit after the applied step."""
    cost_change: float
    """The cost surrogate's measured change H (L_C(theta_new) - L_C(theta_k)) of the applied step."""
    cost_expected_change: float
    """b^T x of the applied step: the linear model's prediction of that change."""
    cost_grad_norm: float
    cost_cg_iters: int
    cost_cg_residual: float
    cpo_case: float
    """0 inactive, 1 active, 2 infeasible (recovery), 3 rejected."""
    cpo_lambda: float
    """lambda*, the dual variable of the trust region."""
    cpo_nu: float
    """nu*, the dual variable of the cost constraint."""
    cpo_q: float
    cpo_r: float
    cpo_s: float
    horizon: float
    """H, the mean episode length that scales the per-step cost surrogate to episode cost."""
    infeasible: bool
    """This update took a recovery step (no policy in the trust region predicted within the limit)."""
    infeasible_updates: int
    """Recovery steps so far in the run."""

    def row(self) -> dict[str, float]:
        """The statistics as `train/<field>` keys, in field order."""
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


class CPO(TrustRegionLearner):
    """Constrained Policy Optimization: maximise the return subject to J_C(pi) <= cost_limit, each update the
    trust-region step of the linearised problem (`trpo.core.cpo.cpo_step`) and a line search on the real surrogates.

    The environment reports a cost per step in info["cost"]; `cost_limit` bounds the expected undiscounted
    episode cost.

    >>> agent = CPO("trpo.examples.safe_envs:PointHazard-v0", TRPOConfig(algo="cpo", cost_limit=5.0)).learn(200_000)
    """

    algo = "cpo"
    COUNTERS: ClassVar[tuple[str, ...]] = (*Learner.COUNTERS, "infeasible_updates")

    def _build_policy_update(self) -> None:
        self.infeasible_updates = 0

    def policy_step(self, b: PolicyBatch) -> CPOStepStats:
        cfg, dist, delta = self.config, self.dist, self.trust_region()
        if b.cost_adv is None:
            raise ValueError("CPO's policy step needs the batch's cost advantages (PolicyBatch.cost_adv)")
        obs, p_k, horizon = b.obs, b.p_k, b.horizon
        params_k = detached_params(self.actor)
        theta_k = flatten(params_k).to(torch.float64)

        # g = ∇L(θ_k) and b = H ∇L_C(θ_k); L_C with centred cost advantages (a baseline: same expected gradient)
        reward_surrogate = self.surrogate(b, b.adv, self.entropy_coefficient())
        g, reward_k = self.surrogate_gradient(params_k, obs, reward_surrogate, b.mask)
        cost_surrogate = self.surrogate(b, b.cost_adv - b.cost_adv.mean())
        b_cost, cost_k = self.surrogate_gradient(params_k, obs, cost_surrogate, b.mask)
        b_cost = horizon * b_cost

        # v = (F + cI)⁻¹ g and u = (F + cI)⁻¹ b with the same Fisher products
        fvp = self.fisher_product(params_k, obs, b.mask)
        cg_g = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)
        cg_b = conjugate_gradient(fvp, b_cost, cfg.cg_iters, cfg.cg_tol)
        c = b.ep_cost - cfg.cost_limit
        nonfinite = not (cg_g.finite and cg_b.finite and bool(torch.isfinite(g).all() & torch.isfinite(b_cost).all()))
        step = cpo_step(g, b_cost, cg_g.x, cg_b.x, c, delta)
        if step.case is CPOCase.REJECTED:
            self.last_rejection = f"CPO step rejected: {step.reason}"
        if step.case is CPOCase.INFEASIBLE:
            self.infeasible_updates += 1

        @torch.no_grad()
        def evaluate(theta: Tensor) -> CPOCandidate:
            p = functional_call(self.actor, unflatten(theta, params_k), (obs,) if b.mask is None else (obs, b.mask))
            kl = dist.kl(p_k, p)
            return CPOCandidate(
                float(reward_surrogate(p) - reward_k),
                horizon * float(cost_surrogate(p) - cost_k),
                float(kl.mean()),
                float(kl.max()),
            )

        search = cpo_line_search(evaluate, theta_k, step, c, delta, cfg.backtrack_coef, cfg.backtrack_iters)
        if search.theta is not None:
            self.set_actor_params(search.theta)
        elif step.case is not CPOCase.REJECTED:
            self.last_rejection = f"CPO line search: {search.reason}"
        x_f_x = float(step.step @ fvp(step.step.to(g.dtype))) if step.step is not None else math.nan
        fraction = cfg.backtrack_coef**search.backtracks if search.theta is not None else 0.0
        accepted = search.candidate if search.theta is not None else None
        step_norm = float(torch.linalg.vector_norm(search.theta - theta_k)) if search.theta is not None else 0.0
        return self._stats(step, accepted, search.backtracks, fraction,
                           g, b_cost, cg_g, cg_b, c, b.ep_cost, horizon, x_f_x, nonfinite, step_norm)  # fmt: skip

    def _stats(
        self,
        step: CPOStep,
        accepted: CPOCandidate | None,
        backtracks: int,
        fraction: float,
        g: Tensor,
        b_cost: Tensor,
        cg_g: CGResult,
        cg_b: CGResult,
        c: float,
        ep_cost: float,
        horizon: float,
        x_f_x: float,
        nonfinite: bool,
        step_norm: float,
    ) -> CPOStepStats:
        delta = self.trust_region()
        kl, kl_max, gain, cost_change = (
            (accepted.kl, accepted.kl_max, accepted.reward_gain, accepted.cost_change) if accepted else (0.0,) * 4
        )
        expected = step.reward_change * fraction
        return CPOStepStats(
            kl=kl, kl_over_delta=kl / delta, kl_max=kl_max, surrogate_gain=gain, expected_gain=expected,
            gain_ratio=gain / expected if accepted is not None and expected > 0 else math.nan,
            grad_norm=float(torch.linalg.vector_norm(g)), cg_iters=cg_g.iterations,
            cg_residual=cg_g.relative_residual, xFx=x_f_x, step_norm=step_norm,
            step_rejected=step.case is CPOCase.REJECTED, nonfinite_rejected=nonfinite,
            backtracks=backtracks, step_fraction=fraction, line_search_success=accepted is not None,
            ep_cost=ep_cost, cost_violation=c, cost_surrogate=c + cost_change, cost_change=cost_change,
            cost_expected_change=step.cost_change * fraction, cost_grad_norm=float(torch.linalg.vector_norm(b_cost)),
            cost_cg_iters=cg_b.iterations, cost_cg_residual=cg_b.relative_residual, cpo_case=CASE_CODES[step.case],
            cpo_lambda=step.lam, cpo_nu=step.nu, cpo_q=step.q, cpo_r=step.r, cpo_s=step.s, horizon=horizon,
            infeasible=step.case is CPOCase.INFEASIBLE, infeasible_updates=self.infeasible_updates,
        )  # fmt: skip
