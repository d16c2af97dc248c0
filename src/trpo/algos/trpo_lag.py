"""TRPO-Lagrangian: TRPO on the reward surrogate minus lambda times the cost surrogate, lambda >= 0 adapted to the
violation of the cost limit (Ray, Achiam, Amodei 2019: the Lagrangian baselines of Safety Gym; the PID multiplier
of Stooke, Achiam, Abbeel 2020 as an option).

One update:

    lambda <- max(0, lambda + lr (J_C(pi_k) - d))           (`LagrangeMultiplier`; or the PID multiplier)
    A_lag = (A - lambda Â_C) / (1 + lambda)                 Â_C the normalised cost advantages
    TRPO's step on L_lag(theta) = mean[pi_theta / pi_k A_lag] (natural gradient, KL boundary, line search)

Dividing by 1 + lambda keeps the advantages' scale, so that the trust region means the same for every lambda.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from trpo.algos.learner import PolicyBatch
from trpo.algos.trpo import TRPO, TRPOStepStats
from trpo.core.advantages import normalize
from trpo.core.cpo import LagrangeMultiplier, PIDLagrangeMultiplier


@dataclass(frozen=True)
class TRPOLagStepStats(TRPOStepStats):
    """One TRPO-Lagrangian step: TRPO's statistics (on the penalised surrogate), then the constraint's."""

    ep_cost: float
    """J_C(pi_k): the mean undiscounted cost of the batch's finished episodes."""
    cost_violation: float
    """J_C(pi_k) - cost_limit (> 0: pi_k violates the constraint)."""
    lagrange_multiplier: float
    """lambda after this update's multiplier step (the one the policy step used)."""
    cost_surrogate: float
    """cost_violation + cost_change: the predicted J_C(pi_new) - cost_limit after the applied step."""
    cost_change: float
    """The cost surrogate's change H mean[(pi_new / pi_k - 1) A_C] of the applied step (0 when none was applied)."""
    horizon: float
    """H, the mean episode length that scales the per-step cost surrogate to episode cost."""
    infeasible: bool
    """pi_k violated the cost limit."""

    def row(self) -> dict[str, float]:
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


class TRPOLagrangian(TRPO):
    """TRPO on the Lagrangian L - lambda L_C with an adaptive multiplier (`lagrangian_lr`, or the PID gains
    `lagrangian_kp`/`lagrangian_kd` with `lagrangian_lr` as the integral gain).

    >>> agent = TRPOLagrangian("trpo.examples.safe_envs:CartPoleBand-v0", TRPOConfig(algo="trpo-lag", cost_limit=25))
    """

    algo = "trpo-lag"

    def _build_policy_update(self) -> None:
        cfg = self.config
        self.multiplier: LagrangeMultiplier | PIDLagrangeMultiplier
        if cfg.lagrangian_kp > 0 or cfg.lagrangian_kd > 0:
            self.multiplier = PIDLagrangeMultiplier(
                cfg.lagrangian_kp, cfg.lagrangian_lr, cfg.lagrangian_kd, cfg.lagrangian_init
            )
        else:
            self.multiplier = LagrangeMultiplier(cfg.lagrangian_lr, cfg.lagrangian_init)

    def policy_state(self) -> dict[str, Any]:
        return {"multiplier": self.multiplier.state()}

    def load_policy_state(self, state: dict[str, Any]) -> None:
        if "multiplier" in state:
            self.multiplier.load_state(state["multiplier"])

    def policy_step(self, b: PolicyBatch) -> TRPOLagStepStats:
        cfg = self.config
        if b.cost_adv is None:
            raise ValueError("TRPO-Lagrangian's policy step needs the batch's cost advantages (PolicyBatch.cost_adv)")
        violation = b.ep_cost - cfg.cost_limit
        lam = self.multiplier.update(b.ep_cost, cfg.cost_limit)
        penalised = (b.adv - lam * normalize(b.cost_adv)) / (1.0 + lam)
        step = super().policy_step(replace(b, adv=penalised))
        cost_change = 0.0
        if step.line_search_success:
            centred = b.cost_adv - b.cost_adv.mean()
            with torch.no_grad():
                ratio = torch.exp(self.dist.log_prob(self.actor(b.obs), b.actions) - b.log_prob_k)
            cost_change = b.horizon * float(((ratio - 1.0) * centred).mean())
        values = {f.name: getattr(step, f.name) for f in fields(step)}
        return TRPOLagStepStats(
            **values, ep_cost=b.ep_cost, cost_violation=violation, lagrange_multiplier=lam,
            cost_surrogate=violation + cost_change, cost_change=cost_change, horizon=b.horizon,
            infeasible=bool(violation > 0 and math.isfinite(violation)),
        )  # fmt: skip
