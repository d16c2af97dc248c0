"""Action distributions as pure functions of one parameter tensor per state.

An actor outputs a tensor `P` of shape [N, k]; each distribution below interprets it:

* `DiagGaussian`: P = [mean, log_std] (k = 2d), continuous actions in R^d.
* `Categorical`: P = logits (k = n), actions in {0..n-1}.
* `MultiCategorical`: P = concatenated logits of independent categoricals (k = sum(nvec)).
* `Bernoulli`: P = logits of independent binary actions (k = n).

Each gives log_prob, entropy, KL(old || new), a sample, the mode and `fisher_product`: the product
M u with the Hessian M of KL(P_old || P) in P at P = P_old, which is the Fisher information of the
distribution in its parameters. The Fisher of the policy is then F = E_s[J^T M J] (J = dP/dtheta).

Action masks (categorical and multi-categorical logits): `masked_logits` replaces the logit of every illegal
action by `MASKED_LOGIT`, whose probability under the softmax is exactly 0 (float32 and float64). The actor
applies it to its output, so every function of this module, unchanged, sees masked parameters: illegal actions are
never sampled nor the mode, their log-probability is never needed, they add 0 to entropy and KL (0 log 0 = 0),
and the rows of the Fisher metric M = diag(p) - p p^T and of J = dP/dtheta for them are 0.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional as nnf


class Distribution(Protocol):
    """The interface every action distribution implements (all methods are pure)."""

    param_dim: int
    action_shape: tuple[int, ...]
    action_dtype: torch.dtype

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) per state, shape [N]."""
        ...

    def entropy(self, params: Tensor) -> Tensor:
        """Entropy per state, shape [N]."""
        ...

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        """KL(old || new) per state, shape [N]."""
        ...

    def fisher_product(self, params: Tensor, u: Tensor) -> Tensor:
        """M u per state, with M = Hessian of KL(params || P) in P at P = params."""
        ...

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        """One action per state."""
        ...

    def mode(self, params: Tensor) -> Tensor:
        """The most likely action per state (deterministic policy)."""
        ...


MASKED_LOGIT = -1e8
"""The logit of an illegal action: exp(-1e8 - max logit) is exactly 0 in float32 and float64, and it stays
finite (no inf - inf = NaN in KL or entropy)."""


def masked_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """logits where mask (legal), MASKED_LOGIT elsewhere; no gradient reaches the logits of illegal actions."""
    return torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))


def check_masks(mask: Tensor, sizes: list[int]) -> str:
    """Why a mask [N, sum(sizes)] is unusable ("" if it is not): every categorical needs a legal action."""
    for i, chunk in enumerate(torch.split(mask, sizes, dim=-1)):
        empty = ~chunk.any(dim=-1)
        if bool(empty.any()):
            row = int(torch.nonzero(empty)[0, 0])
            where = f" of action component {i}" if len(sizes) > 1 else ""
            return f"the action mask{where} allows no action (row {row})"
    return ""


class DiagGaussian:
    """Diagonal Gaussian N(mean, diag(exp(log_std))^2); M = diag(1/sigma^2, 2) in (mean, log_std)."""

    action_dtype = torch.float32

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim
        self.param_dim = 2 * action_dim
        self.action_shape: tuple[int, ...] = (action_dim,)

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        return params[..., : self.action_dim], params[..., self.action_dim :]

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        mean, log_std = self.split(params)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        _, log_std = self.split(params)
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        mean_o, log_std_o = self.split(old)
        mean_n, log_std_n = self.split(new)
        var_ratio = torch.exp(2 * (log_std_o - log_std_n))
        mahalanobis = (mean_o - mean_n).pow(2) * torch.exp(-2 * log_std_n)
        return (log_std_n - log_std_o + 0.5 * (var_ratio + mahalanobis - 1)).sum(-1)

    def fisher_product(self, params: Tensor, u: Tensor) -> Tensor:
        _, log_std = self.split(params)
        u_mean, u_log_std = self.split(u)
        return torch.cat([u_mean * torch.exp(-2 * log_std), 2 * u_log_std], dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        mean, log_std = self.split(params)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(log_std) * noise

    def mode(self, params: Tensor) -> Tensor:
        return self.split(params)[0]


def _categorical_fisher(logits: Tensor, u: Tensor) -> Tensor:
    """(diag(p) - p p^T) u for p = softmax(logits), the Hessian of KL(p_old || softmax(z)) in z."""
    p = torch.softmax(logits, dim=-1)
    return p * (u - (p * u).sum(-1, keepdim=True))


def _categorical_entropy(logits: Tensor) -> Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


def _categorical_kl(old: Tensor, new: Tensor) -> Tensor:
    log_p_old = torch.log_softmax(old, dim=-1)
    log_p_new = torch.log_softmax(new, dim=-1)
    return (log_p_old.exp() * (log_p_old - log_p_new)).sum(-1)


def _sample_categorical(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """Gumbel-max sampling: argmax(logits + Gumbel noise), one draw per row."""
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(logits.dtype).tiny)))
    return torch.argmax(logits + gumbel, dim=-1)


class Categorical:
    """Categorical over n actions parameterised by logits."""

    action_dtype = torch.int64
    action_shape: tuple[int, ...] = ()

    def __init__(self, n: int) -> None:
        self.param_dim = n

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        log_p = torch.log_softmax(params, dim=-1)
        return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self, params: Tensor) -> Tensor:
        return _categorical_entropy(params)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        return _categorical_kl(old, new)

    def fisher_product(self, params: Tensor, u: Tensor) -> Tensor:
        return _categorical_fisher(params, u)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        return _sample_categorical(params, generator)

    def mode(self, params: Tensor) -> Tensor:
        return torch.argmax(params, dim=-1)


class MultiCategorical:
    """Independent categoricals with nvec[i] choices each; logits concatenated."""

    action_dtype = torch.int64

    def __init__(self, nvec: list[int]) -> None:
        self.nvec = [int(n) for n in nvec]
        self.param_dim = sum(self.nvec)
        self.action_shape: tuple[int, ...] = (len(self.nvec),)

    def _chunks(self, params: Tensor) -> tuple[Tensor, ...]:
        return torch.split(params, self.nvec, dim=-1)

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        actions = actions.long()
        return sum(
            (
                torch.log_softmax(logits, dim=-1).gather(-1, actions[..., i : i + 1]).squeeze(-1)
                for i, logits in enumerate(self._chunks(params))
            ),
            torch.zeros(params.shape[:-1], dtype=params.dtype, device=params.device),
        )

    def entropy(self, params: Tensor) -> Tensor:
        return torch.stack([_categorical_entropy(c) for c in self._chunks(params)], -1).sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        pairs = zip(self._chunks(old), self._chunks(new), strict=True)
        return torch.stack([_categorical_kl(o, n) for o, n in pairs], -1).sum(-1)

    def fisher_product(self, params: Tensor, u: Tensor) -> Tensor:
        pairs = zip(self._chunks(params), self._chunks(u), strict=True)
        return torch.cat([_categorical_fisher(p, v) for p, v in pairs], dim=-1)

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.stack([_sample_categorical(c, generator) for c in self._chunks(params)], -1)

    def mode(self, params: Tensor) -> Tensor:
        return torch.stack([torch.argmax(c, dim=-1) for c in self._chunks(params)], -1)


def mask_sizes(dist: Distribution) -> list[int] | None:
    """The categorical sizes an action mask of `dist` covers ([n] or nvec), None if it takes no mask."""
    if isinstance(dist, Categorical):
        return [dist.param_dim]
    if isinstance(dist, MultiCategorical):
        return list(dist.nvec)
    return None


class Bernoulli:
    """Independent binary actions parameterised by logits; M = diag(p (1 - p))."""

    action_dtype = torch.int64

    def __init__(self, n: int) -> None:
        self.param_dim = n
        self.action_shape: tuple[int, ...] = (n,)

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        return -nnf.binary_cross_entropy_with_logits(params, actions.to(params.dtype), reduction="none").sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        p = torch.sigmoid(params)
        return nnf.binary_cross_entropy_with_logits(params, p, reduction="none").sum(-1)

    def kl(self, old: Tensor, new: Tensor) -> Tensor:
        p = torch.sigmoid(old)
        cross = nnf.binary_cross_entropy_with_logits(new, p, reduction="none")
        self_entropy = nnf.binary_cross_entropy_with_logits(old, p, reduction="none")
        return (cross - self_entropy).sum(-1)

    def fisher_product(self, params: Tensor, u: Tensor) -> Tensor:
        p = torch.sigmoid(params)
        return p * (1 - p) * u

    def sample(self, params: Tensor, generator: torch.Generator | None) -> Tensor:
        uniform = torch.rand(params.shape, generator=generator, dtype=params.dtype, device=params.device)
        return (uniform < torch.sigmoid(params)).long()

    def mode(self, params: Tensor) -> Tensor:
        return (params > 0).long()
