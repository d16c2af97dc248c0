"""TRPO (Schulman et al. 2015): the natural-gradient step scaled to the KL boundary, then a backtracking
line search that accepts only a candidate with mean KL <= delta and a positive surrogate gain."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from trpo.algos.learner import PolicyBatch
from trpo.algos.npg import NPG, NaturalStepStats
from trpo.core.trust_region import backtracking_line_search


@dataclass(frozen=True)
class TRPOStepStats(NaturalStepStats):
    """One TRPO step: the natural step's statistics, and the line search's."""

    backtracks: int
    """Candidates rejected before the accepted one (all tried when none was)."""
    step_fraction: float
    """beta^j of the accepted candidate (0 when none was accepted)."""
    line_search_success: bool

    def row(self) -> dict[str, float]:
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


class TRPO(NPG):
    """Trust Region Policy Optimization on a Gymnasium environment: NPG's step, made safe by the line search.

    >>> agent = TRPO("CartPole-v1", TRPOConfig(total_steps=100_000), seed=0)
    >>> agent.learn()
    >>> agent.save("runs/cartpole")
    """

    algo = "trpo"

    def policy_step(self, b: PolicyBatch) -> TRPOStepStats:
        """The paper's update (docs/algorithm.md, steps 3-7):

        g = grad L(theta_k);  x = CG(F, g);  s = sqrt(2 delta / x^T F x) x
        theta = theta_k + beta^j s for the first j with KL(pi_k || pi_theta) <= delta and L gain > 0
        """
        cfg, delta = self.config, self.trust_region()
        ng = self.natural_gradient(b)  # g, x = CG(F, g), s
        if ng.full.step is None:
            return _stats(NaturalStepStats.of(ng, delta, None, math.nan), 0, 0.0, False)
        search = backtracking_line_search(
            ng.evaluate, ng.theta_k, ng.full.step, delta, cfg.backtrack_coef, cfg.backtrack_iters
        )
        if search.theta is None or search.candidate is None:  # keep pi_k
            rejected = NaturalStepStats.of(ng, delta, None, float(ng.g @ ng.full.step))
            return _stats(rejected, search.backtracks, 0.0, False)
        self.set_actor_params(search.theta)
        fraction = cfg.backtrack_coef**search.backtracks
        expected = float(ng.g @ ng.full.step) * fraction  # the linear model's g^T s for the accepted step
        step_norm = float(torch.linalg.vector_norm(search.theta - ng.theta_k))
        accepted = NaturalStepStats.of(ng, delta, search.candidate, expected, step_norm)
        return _stats(accepted, search.backtracks, fraction, True)


def _stats(step: NaturalStepStats, backtracks: int, fraction: float, success: bool) -> TRPOStepStats:
    values = {f.name: getattr(step, f.name) for f in fields(step)}
    return TRPOStepStats(**values, backtracks=backtracks, step_fraction=fraction, line_search_success=success)
