"""What every policy step receives (`PolicyBatch`), and the natural gradient that TRPO and NPG share.

`TRPO.update` computes pi_k on the batch once, calls the algorithm's `_policy_step(PolicyBatch)`, then
fits the critic and logs the common diagnostics. Only `_policy_step` differs between TRPO, NPG and PPO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from trpo.trust_region import Candidate, CGResult, FullStep


@dataclass(frozen=True)
class PolicyBatch:
    """An on-policy batch as the policy step sees it."""

    obs: Tensor
    """Normalised observations [N, obs_dim]."""
    actions: Tensor
    adv: Tensor
    """Advantages (normalised if `normalize_advantages`)."""
    p_k: Tensor
    """Distribution parameters of pi_k, the policy that collected the batch (no gradient)."""
    log_prob_k: Tensor
    """log pi_k(a|s) of the batch's actions."""


@dataclass(frozen=True)
class NaturalGradient:
    """The natural-gradient direction of one update and the means to evaluate a candidate step."""

    g: Tensor
    """Policy gradient grad L(theta_k) (float64)."""
    cg: CGResult
    """x = (F + cI)^-1 g by conjugate gradient."""
    full: FullStep
    """s = sqrt(2 delta / x^T F x) x, or None when rejected."""
    theta_k: Tensor
    """Flat parameters of pi_k (float64)."""
    evaluate: Callable[[Tensor], Candidate]
    """theta -> surrogate gain L(theta) - L(theta_k), mean and max KL(pi_k || pi_theta) on the batch."""

    def step_diagnostics(
        self, kl: float, kl_max: float, gain: float, expected_gain: float, applied: bool, step_norm: float, delta: float
    ) -> dict[str, float]:
        """The diagnostics TRPO and NPG both log for the step they applied (or did not)."""
        return {
            "train/kl": kl,
            "train/kl_over_delta": kl / delta,
            "train/kl_max": kl_max,
            "train/surrogate_gain": gain,
            "train/expected_gain": expected_gain,
            "train/gain_ratio": gain / expected_gain if applied and expected_gain > 0 else math.nan,
            "train/grad_norm": float(torch.linalg.vector_norm(self.g)),
            "train/cg_iters": float(self.cg.iterations),
            "train/cg_residual": self.cg.relative_residual,
            "train/xFx": self.full.x_f_x,
            "train/step_norm": step_norm,
            "train/step_rejected": float(self.full.step is None),
            "train/nonfinite_rejected": float(self.full.nonfinite),
        }
