"""The pure math of the TRPO step: Fisher-vector products, conjugate gradient, step size, line search.

Notation (Schulman et al. 2015): g is the gradient of the surrogate L at theta_k, F the Fisher matrix
(Hessian of the mean KL at theta_k), delta the trust-region size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp

from trpo.core.distributions import Distribution

Params = dict[str, Tensor]
VectorFn = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------- flat parameter vectors


def flatten(tensors: Mapping[str, Tensor] | list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """Concatenate tensors (in order) into one flat vector."""
    values = list(tensors.values()) if isinstance(tensors, Mapping) else list(tensors)
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Split a flat vector into tensors shaped (and typed) like `like`."""
    out: Params = {}
    offset = 0
    for name, ref in like.items():
        n = ref.numel()
        out[name] = vector[offset : offset + n].view(ref.shape).to(ref.dtype)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {offset}")
    return out


def detached_params(module: nn.Module) -> Params:
    """The module's parameters, detached, keyed by name (used for functional calls only)."""
    return {name: p.detach() for name, p in module.named_parameters()}


# ---------------------------------------------------------------- Fisher-vector products


def _inputs(obs: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
    """The actor's arguments: the observations, and the action masks when there are any."""
    return (obs,) if mask is None else (obs, mask)


def analytic_fvp(
    actor: nn.Module, params: Params, obs: Tensor, dist: Distribution, mask: Tensor | None = None
) -> VectorFn:
    """F v = (1/N) J^T M J v, with J = dP/dtheta of the actor's distribution parameters at theta_k.

    The actor is linearised once: the reverse-mode graph of P(theta) and a VJP of that VJP (which
    is J v, since the VJP is linear) are built here and reused by every call of the returned function.
    With action masks, P holds the masked logits: J and M are 0 for illegal actions.
    """
    p_k, vjp_fn = vjp(lambda ps: functional_call(actor, ps, _inputs(obs, mask)), params)[:2]
    p_k = p_k.detach()
    transpose_vjp = vjp(vjp_fn, torch.zeros_like(p_k))[1]
    n = p_k.shape[0]

    def fvp(v: Tensor) -> Tensor:
        (jv,) = transpose_vjp((unflatten(v, params),))
        (jt_m_jv,) = vjp_fn(dist.fisher_product(p_k, jv))
        return flatten(jt_m_jv).to(v.dtype) / n

    return fvp


def double_backprop_fvp(
    actor: nn.Module, params: Params, obs: Tensor, dist: Distribution, mask: Tensor | None = None
) -> VectorFn:
    """F v = d/dtheta [ (d KLbar / dtheta) . v ] at theta_k, KLbar = mean KL(pi_k || pi_theta).

    Generic: needs only the distribution's KL. The gradient graph is built once and reused.
    """
    leaves = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    p_new = functional_call(actor, leaves, _inputs(obs, mask))
    kl = dist.kl(p_new.detach(), p_new).mean()
    grads = torch.autograd.grad(kl, list(leaves.values()), create_graph=True)
    flat_grad = flatten(grads)

    def fvp(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat_grad @ v.to(flat_grad.dtype), list(leaves.values()), retain_graph=True)
        return flatten(hv).to(v.dtype)

    return fvp


def damped(fvp: VectorFn, damping: float) -> VectorFn:
    """(F + c I) v."""
    return lambda v: fvp(v) + damping * v


# ---------------------------------------------------------------- conjugate gradient


@dataclass(frozen=True)
class CGResult:
    x: Tensor
    iterations: int
    relative_residual: float
    finite: bool = True
    """False if A p was NaN/inf at some iteration (x is then not to be used)."""


def conjugate_gradient(matvec: VectorFn, b: Tensor, max_iters: int, tol: float) -> CGResult:
    """Solve A x = b for symmetric positive-definite A given only x -> A x.

    Starts at x = 0, runs in float64, stops when ||r|| / ||b|| < tol or after `max_iters` iterations.
    """
    b = b.to(torch.float64)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    b_norm = float(torch.linalg.vector_norm(b))
    if not math.isfinite(b_norm):
        return CGResult(x, 0, math.nan, finite=False)
    if b_norm == 0.0:
        return CGResult(x, 0, 0.0)
    rr = r @ r
    iterations = 0
    for iterations in range(1, max_iters + 1):
        ap = matvec(p).to(torch.float64)
        p_ap = p @ ap
        if not torch.isfinite(p_ap):
            return CGResult(x, iterations, math.nan, finite=False)
        if p_ap <= 0:
            break  # A is not positive definite along p: keep the iterate so far
        alpha = rr / p_ap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        if math.sqrt(float(rr_new)) / b_norm < tol:
            rr = rr_new
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGResult(x, iterations, math.sqrt(float(rr)) / b_norm)


# ---------------------------------------------------------------- step size


@dataclass(frozen=True)
class FullStep:
    step: Tensor | None
    """beta * x with beta = sqrt(2 delta / x^T F x), or None when the step is rejected."""
    x_f_x: float
    reason: str = ""
    nonfinite: bool = False
    """The step was rejected because something was NaN or infinite."""


def kl_boundary_step(x: Tensor, f_x: Tensor, max_kl: float) -> FullStep:
    """Scale the search direction x to the edge of the quadratic trust region.

    s = sqrt(2 delta / (x^T F x)) x, so that (1/2) s^T F s = delta. Rejects x^T F x <= 0 and
    non-finite values.
    """
    x_f_x = float(x @ f_x)
    if not math.isfinite(x_f_x) or not bool(torch.isfinite(x).all()):
        return FullStep(None, x_f_x, "non-finite search direction", nonfinite=True)
    if x_f_x <= 0:
        return FullStep(None, x_f_x, "x^T F x <= 0")
    return FullStep(math.sqrt(2 * max_kl / x_f_x) * x, x_f_x)


# ---------------------------------------------------------------- line search


@dataclass(frozen=True)
class Candidate:
    """What the line search needs to know of one candidate theta."""

    surrogate_gain: float
    """L(theta) - L(theta_k)."""
    kl: float
    """Mean KL(pi_k || pi_theta) over the batch."""
    kl_max: float
    """Largest per-state KL."""


@dataclass(frozen=True)
class LineSearchResult:
    theta: Tensor | None
    """Accepted parameters, or None (keep theta_k)."""
    candidate: Candidate | None
    """Measurements of the accepted candidate (or of the last one tried, when none was accepted)."""
    backtracks: int
    """Number of candidates rejected before the accepted one (or all tried)."""

    @property
    def accepted(self) -> bool:
        return self.theta is not None


def is_acceptable(c: Candidate, max_kl: float) -> bool:
    """A candidate is accepted iff its mean KL <= delta, its surrogate improves and all are finite."""
    finite = all(math.isfinite(v) for v in (c.surrogate_gain, c.kl, c.kl_max))
    return finite and c.kl <= max_kl and c.surrogate_gain > 0


def backtracking_line_search(
    evaluate: Callable[[Tensor], Candidate],
    theta_k: Tensor,
    full_step: Tensor,
    max_kl: float,
    backtrack_coef: float,
    backtrack_iters: int,
) -> LineSearchResult:
    """Try theta_k + beta^j s for j = 0 .. backtrack_iters-1; return the first acceptable one."""
    last: Candidate | None = None
    for j in range(backtrack_iters):
        theta = theta_k + (backtrack_coef**j) * full_step
        last = evaluate(theta)
        if is_acceptable(last, max_kl):
            return LineSearchResult(theta, last, j)
    return LineSearchResult(None, last, backtrack_iters)
