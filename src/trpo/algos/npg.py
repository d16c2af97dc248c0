"""NPG: the natural policy gradient step (Kakade 2001) scaled to the KL boundary, and the natural gradient
itself, which TRPO shares (TRPO is NPG plus the line search, as in the paper)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor
from torch.func import functional_call

from trpo.algos.learner import Learner, PolicyBatch
from trpo.core.trust_region import (
    Candidate,
    CGResult,
    FullStep,
    analytic_fvp,
    conjugate_gradient,
    damped,
    detached_params,
    double_backprop_fvp,
    flatten,
    kl_boundary_step,
    unflatten,
)


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


@dataclass(frozen=True)
class NaturalStepStats:
    """One natural-gradient step (NPG's; TRPO's adds the line search's figures)."""

    kl: float
    """Mean KL(pi_k || pi_new) of the applied step (0 when none was applied)."""
    kl_over_delta: float
    kl_max: float
    surrogate_gain: float
    """L(theta_new) - L(theta_k)."""
    expected_gain: float
    """The linear model's prediction g^T s of that gain."""
    gain_ratio: float
    """surrogate_gain / expected_gain (NaN when no step was applied or g^T s <= 0)."""
    grad_norm: float
    cg_iters: int
    cg_residual: float
    xFx: float  # the paper's x^T F x
    step_norm: float
    step_rejected: bool
    """The full step was rejected before any candidate was tried (x^T F x <= 0 or non-finite)."""
    nonfinite_rejected: bool

    @classmethod
    def of(
        cls, ng: NaturalGradient, delta: float, c: Candidate | None, expected_gain: float, step_norm: float = 0.0
    ) -> NaturalStepStats:
        """The statistics of `ng` with the applied candidate `c` (None: the policy was kept)."""
        kl, kl_max, gain = (c.kl, c.kl_max, c.surrogate_gain) if c is not None else (0.0, 0.0, 0.0)
        return cls(
            kl, kl / delta, kl_max, gain, expected_gain,
            gain / expected_gain if c is not None and expected_gain > 0 else math.nan,
            float(torch.linalg.vector_norm(ng.g)), ng.cg.iterations, ng.cg.relative_residual, ng.full.x_f_x,
            step_norm, ng.full.step is None, ng.full.nonfinite,
        )  # fmt: skip

    def row(self) -> dict[str, float]:
        """The statistics as progress.csv / TensorBoard keys (`train/<field>`), in field order."""
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


class TrustRegionLearner(Learner):
    """The pieces of a natural-gradient step, shared by NPG (and TRPO) and CPO (which also solves F u = b with the
    same Fisher products): surrogates of the batch, their gradients at theta_k, and the damped Fisher product."""

    def surrogate(self, b: PolicyBatch, adv: Tensor, ent_coef: float = 0.0) -> Callable[[Tensor], Tensor]:
        """p -> L(theta) = mean[pi_theta(a|s) / pi_k(a|s) * adv] (+ ent_coef * mean entropy of pi_theta), from
        the distribution parameters p = pi_theta(s) on the batch."""
        dist, actions, log_prob_k = self.dist, b.actions, b.log_prob_k

        def surrogate(p: Tensor) -> Tensor:
            gain = (torch.exp(dist.log_prob(p, actions) - log_prob_k) * adv).mean()
            return gain + ent_coef * dist.entropy(p).mean() if ent_coef > 0 else gain

        return surrogate

    def surrogate_gradient(
        self,
        params_k: dict[str, Tensor],
        obs: Tensor,
        surrogate: Callable[[Tensor], Tensor],
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(grad L(theta_k) as a flat float64 vector, L(theta_k)) of a surrogate at the actor's parameters
        (under the batch's action masks, when it has them)."""
        leaves = {name: p.clone().requires_grad_(True) for name, p in params_k.items()}
        loss_k = surrogate(functional_call(self.actor, leaves, (obs,) if mask is None else (obs, mask)))
        grad = flatten(torch.autograd.grad(loss_k, list(leaves.values()))).to(torch.float64)
        return grad, loss_k.detach()

    def fisher_product(
        self, params_k: dict[str, Tensor], obs: Tensor, mask: Tensor | None = None
    ) -> Callable[[Tensor], Tensor]:
        """v -> (F + cI) v at theta_k, F the Fisher matrix on (a subsample, `fvp_subsample`, of) the batch
        (of the masked policy when the batch has action masks)."""
        cfg = self.config
        fvp_obs, fvp_mask = obs, mask
        if cfg.fvp_subsample < 1:
            idx = self.fvp_indices(obs.shape[0]).to(obs.device)
            fvp_obs, fvp_mask = obs[idx], mask[idx] if mask is not None else None
        make_fvp = analytic_fvp if cfg.fvp_method == "analytic" else double_backprop_fvp
        return damped(make_fvp(self.actor, params_k, fvp_obs, self.dist, fvp_mask), cfg.cg_damping)

    def fvp_indices(self, n: int) -> Tensor:
        """A random subset of the batch (fraction `fvp_subsample`) for Fisher-vector products."""
        k = max(1, round(self.config.fvp_subsample * n))
        return torch.randperm(n, generator=self.generator)[:k]


class NPG(TrustRegionLearner):
    """Natural policy gradient: theta = theta_k + sqrt(2 delta / x^T F x) x with x = (F + cI)^-1 g by
    conjugate gradient, applied as is. Only the quadratic model of the KL bounds the step, so the measured
    KL (`train/kl`, `train/kl_over_delta`) may exceed delta: that overshoot, and the surrogate losses it
    can cause, is what TRPO's line search prevents.

    >>> agent = NPG("CartPole-v1", TRPOConfig(max_kl=0.01), seed=0).learn(100_000)
    """

    algo = "npg"

    def policy_step(self, b: PolicyBatch) -> NaturalStepStats:
        """theta <- theta_k + s, s the full step; logs the step's real mean/max KL and surrogate gain."""
        delta = self.trust_region()
        ng = self.natural_gradient(b)
        s = ng.full.step
        if s is None:
            return NaturalStepStats.of(ng, delta, None, math.nan)
        theta = ng.theta_k + s
        c = ng.evaluate(theta)
        if not all(map(math.isfinite, (c.kl, c.kl_max, c.surrogate_gain))):
            self.last_rejection = "non-finite KL or surrogate after the natural-gradient step"
            return replace(NaturalStepStats.of(ng, delta, None, math.nan), nonfinite_rejected=True)
        self.set_actor_params(theta)
        return NaturalStepStats.of(ng, delta, c, float(ng.g @ s), float(torch.linalg.vector_norm(s)))

    def natural_gradient(self, b: PolicyBatch) -> NaturalGradient:
        """g = grad L(theta_k), x = (F + cI)^-1 g by conjugate gradient, and the full step
        s = sqrt(2 delta / x^T F x) x (None if anything is non-finite or x^T F x <= 0)."""
        cfg, dist = self.config, self.dist
        obs, p_k = b.obs, b.p_k
        inputs = (obs,) if b.mask is None else (obs, b.mask)  # the masks pi_k sampled under, for every candidate
        params_k = detached_params(self.actor)
        theta_k = flatten(params_k).to(torch.float64)

        def policy(theta: Tensor) -> Tensor:
            return functional_call(self.actor, unflatten(theta, params_k), inputs)

        surrogate = self.surrogate(b, b.adv, self.entropy_coefficient())
        g, loss_k = self.surrogate_gradient(params_k, obs, surrogate, b.mask)  # g = grad L at theta_k

        # x = (F + cI)^-1 g by conjugate gradient, F from (a subsample of) the batch
        fvp = self.fisher_product(params_k, obs, b.mask)
        cg = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)

        # s = sqrt(2 delta / x^T F x) x (rejected if anything is non-finite or x^T F x <= 0)
        if not bool(torch.isfinite(g).all()):
            full = FullStep(None, math.nan, "non-finite policy gradient", nonfinite=True)
        elif not cg.finite:
            full = FullStep(None, math.nan, "non-finite Fisher-vector product", nonfinite=True)
        else:
            full = kl_boundary_step(cg.x, fvp(cg.x), self.trust_region())
        if full.nonfinite:
            self.last_rejection = full.reason

        @torch.no_grad()
        def evaluate(theta: Tensor) -> Candidate:
            p = policy(theta)
            kl = dist.kl(p_k, p)
            return Candidate(float(surrogate(p) - loss_k), float(kl.mean()), float(kl.max()))

        return NaturalGradient(g, cg, full, theta_k, evaluate)
