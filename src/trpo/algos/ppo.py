"""PPO (Schulman et al. 2017): the clipped surrogate optimised by Adam over minibatch epochs, on the
same learner (rollouts, advantages, critic, normalisation, logging, checkpoints) as TRPO: a sibling of
TRPO and NPG, not a kind of TRPO."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from trpo.algos.learner import Learner, PolicyBatch
from trpo.core.trust_region import detached_params, flatten

ADAM_EPS = 1e-5  # the actor's Adam epsilon, as in SB3's and CleanRL's PPO


def clipped_surrogate(ratio: Tensor, adv: Tensor, clip_range: float) -> Tensor:
    """L^CLIP = mean[min(r A, clip(r, 1 - eps, 1 + eps) A)], r = pi_theta(a|s) / pi_k(a|s) (maximised)."""
    return torch.min(ratio * adv, ratio.clamp(1 - clip_range, 1 + clip_range) * adv).mean()


def approx_kl(log_ratio: Tensor) -> Tensor:
    """Approximate KL(pi_k || pi_theta) from samples a ~ pi_k: mean[(r - 1) - log r] with log r = log_ratio
    (the k3 estimator: unbiased, each term >= 0)."""
    return (log_ratio.exp() - 1 - log_ratio).mean()


def clip_fraction(ratio: Tensor, clip_range: float) -> Tensor:
    """Fraction of samples whose ratio is outside [1 - eps, 1 + eps] (their gradient is clipped when
    the advantage pushes further out)."""
    return ((ratio - 1).abs() > clip_range).float().mean()


@dataclass(frozen=True)
class PPOStepStats:
    """One PPO step: minibatch epochs of Adam on the clipped surrogate, and the real KL of the result."""

    kl: float
    """Mean KL(pi_k || pi_new) on the batch (0 when the step was undone)."""
    kl_max: float
    surrogate_gain: float
    """L(theta_new) - L(theta_k) of the unclipped surrogate."""
    approx_kl: float
    """Mean over minibatches of the k3 estimate of KL(pi_k || pi_theta) before each step."""
    clip_fraction: float
    policy_loss: float
    grad_norm: float
    """Mean gradient norm before clipping."""
    step_norm: float
    minibatch_steps: int
    early_stopped: bool
    """target_kl stopped the epochs early."""
    nonfinite_rejected: bool

    def row(self) -> dict[str, float]:
        """The statistics as progress.csv / TensorBoard keys (`train/<field>`), in field order."""
        return {f"train/{f.name}": float(getattr(self, f.name)) for f in fields(self)}


class PPO(Learner):
    """Proximal Policy Optimization with the clipped surrogate, on the same learner as TRPO and NPG.

    Per update: `ppo_epochs` passes over the batch in shuffled minibatches of `ppo_minibatch_size`,
    each an Adam step (lr `pi_lr`) on -L^CLIP - ent_coef * entropy, the gradient clipped to
    `max_grad_norm`. With `target_kl` > 0 the update stops before the first minibatch whose
    approximate KL to pi_k exceeds it. The actor's Adam state is checkpointed.

    >>> agent = PPO("CartPole-v1", TRPOConfig(clip_range=0.2), seed=0).learn(100_000)
    """

    algo = "ppo"

    def _build_policy_update(self) -> None:
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.config.pi_lr, eps=ADAM_EPS, fused=True)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers(), "actor_optimizer": self.actor_optimizer}

    def policy_step(self, b: PolicyBatch) -> PPOStepStats:
        """Minibatch epochs of Adam on the clipped surrogate; logs the real KL of the result."""
        cfg, dist = self.config, self.dist
        theta_k = flatten(detached_params(self.actor))
        n, size = b.obs.shape[0], cfg.ppo_minibatch_size
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
        losses, kls, clipped, norms = [], [], [], []
        stopped = False
        ent_coef = self.entropy_coefficient()
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n, generator=self.generator).to(b.obs.device)
            for start in range(0, n, size):
                idx = order[start : start + size]
                p = self.actor(b.obs[idx], b.mask[idx] if b.mask is not None else None)
                log_ratio = dist.log_prob(p, b.actions[idx]) - b.log_prob_k[idx]
                ratio = log_ratio.exp()
                kl = float(approx_kl(log_ratio.detach()))
                if cfg.target_kl > 0 and kl > cfg.target_kl:
                    stopped = True
                    break
                loss = -clipped_surrogate(ratio, b.adv[idx], cfg.clip_range)
                if ent_coef > 0:
                    loss = loss - ent_coef * dist.entropy(p).mean()
                self.actor_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(self.actor.parameters(), max_norm)))
                self.actor_optimizer.step()
                losses.append(float(loss.detach()))
                kls.append(kl)
                clipped.append(float(clip_fraction(ratio.detach(), cfg.clip_range)))
            if stopped:
                break

        with torch.no_grad():
            p_new = self.actor(b.obs, b.mask)
            kl_states = dist.kl(b.p_k, p_new)
            ratio_new = torch.exp(dist.log_prob(p_new, b.actions) - b.log_prob_k)
            gain = float((ratio_new * b.adv).mean() - b.adv.mean())  # L(theta) - L(theta_k), L(theta_k) = mean A
        theta = flatten(detached_params(self.actor))
        nonfinite = not (bool(torch.isfinite(theta).all()) and math.isfinite(gain))
        if nonfinite:  # keep pi_k and start the optimiser afresh
            self.set_actor_params(theta_k.to(torch.float64))
            self._build_policy_update()
            self.last_rejection = "non-finite actor parameters or surrogate after the PPO epochs"
        return PPOStepStats(
            kl=0.0 if nonfinite else float(kl_states.mean()),
            kl_max=0.0 if nonfinite else float(kl_states.max()),
            surrogate_gain=0.0 if nonfinite else gain,
            approx_kl=_mean(kls),
            clip_fraction=_mean(clipped),
            policy_loss=_mean(losses),
            grad_norm=_mean(norms),
            step_norm=0.0 if nonfinite else float(torch.linalg.vector_norm(theta - theta_k)),
            minibatch_steps=len(losses),
            early_stopped=stopped,
            nonfinite_rejected=nonfinite,
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
