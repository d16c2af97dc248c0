"""NPG: the natural policy gradient step (Kakade 2001) scaled to the KL boundary, without TRPO's line search."""

from __future__ import annotations

import math

import torch

from trpo.algorithm import TRPO
from trpo.policy_update import PolicyBatch


class NPG(TRPO):
    """Natural policy gradient on the TRPO machinery: theta = theta_k + sqrt(2 delta / x^T F x) x with
    x = (F + cI)^-1 g from the same conjugate gradient, applied as is. Only the quadratic model of the
    KL bounds the step, so the measured KL (`train/kl`, `train/kl_over_delta`) may exceed delta: that
    overshoot, and the surrogate losses it can cause, is what TRPO's line search prevents.

    >>> agent = NPG("CartPole-v1", TRPOConfig(max_kl=0.01), seed=0).learn(100_000)
    """

    algo = "npg"

    def _policy_step(self, b: PolicyBatch) -> dict[str, float]:
        """theta <- theta_k + s, s the full step; logs the step's real mean/max KL and surrogate gain."""
        delta = self.config.max_kl
        ng = self._natural_gradient(b)
        s = ng.full.step
        if s is None:
            return ng.step_diagnostics(0.0, 0.0, 0.0, math.nan, False, 0.0, delta)
        theta = ng.theta_k + s
        c = ng.evaluate(theta)
        if not all(map(math.isfinite, (c.kl, c.kl_max, c.surrogate_gain))):
            self.last_rejection = "non-finite KL or surrogate after the natural-gradient step"
            return {**ng.step_diagnostics(0.0, 0.0, 0.0, math.nan, False, 0.0, delta), "train/nonfinite_rejected": 1.0}
        self._set_actor_params(theta)
        step_norm = float(torch.linalg.vector_norm(s))
        return ng.step_diagnostics(c.kl, c.kl_max, c.surrogate_gain, float(ng.g @ s), True, step_norm, delta)
