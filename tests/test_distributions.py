"""Distributions agree with torch.distributions, and their Fisher metric is the Hessian of their KL."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as td
from torch.autograd.functional import hessian

from trpo.core.distributions import Bernoulli, Categorical, DiagGaussian, Distribution, MultiCategorical

GEN = torch.Generator().manual_seed(0)


def reference(dist: Distribution, params: torch.Tensor) -> td.Distribution:
    if isinstance(dist, DiagGaussian):
        mean, log_std = dist.split(params)
        return td.Independent(td.Normal(mean, log_std.exp()), 1)
    if isinstance(dist, Categorical):
        return td.Categorical(logits=params)
    if isinstance(dist, Bernoulli):
        return td.Independent(td.Bernoulli(logits=params), 1)
    raise AssertionError


@pytest.mark.parametrize("dist", [DiagGaussian(3), Categorical(4), Bernoulli(3)], ids=type)
def test_log_prob_entropy_kl_match_torch(dist: Distribution) -> None:
    p = torch.randn(6, dist.param_dim, generator=GEN, dtype=torch.float64)
    q = torch.randn(6, dist.param_dim, generator=GEN, dtype=torch.float64)
    actions = dist.sample(p, GEN)
    ref_p, ref_q = reference(dist, p), reference(dist, q)
    assert torch.allclose(
        dist.log_prob(p, actions),
        ref_p.log_prob(
            actions.to(p.dtype) if dist.action_dtype.is_floating_point or isinstance(dist, Bernoulli) else actions
        ),
    )
    assert torch.allclose(dist.entropy(p), ref_p.entropy())
    assert torch.allclose(dist.kl(p, q), td.kl_divergence(ref_p, ref_q))


def test_multi_categorical_is_a_product_of_categoricals() -> None:
    dist = MultiCategorical([2, 3])
    p = torch.randn(5, 5, generator=GEN, dtype=torch.float64)
    q = torch.randn(5, 5, generator=GEN, dtype=torch.float64)
    a = dist.sample(p, GEN)
    parts = [
        (td.Categorical(logits=p[:, :2]), td.Categorical(logits=q[:, :2])),
        (td.Categorical(logits=p[:, 2:]), td.Categorical(logits=q[:, 2:])),
    ]
    assert torch.allclose(dist.log_prob(p, a), parts[0][0].log_prob(a[:, 0]) + parts[1][0].log_prob(a[:, 1]))
    assert torch.allclose(dist.entropy(p), parts[0][0].entropy() + parts[1][0].entropy())
    assert torch.allclose(dist.kl(p, q), sum(td.kl_divergence(x, y) for x, y in parts))  # type: ignore[arg-type]


@pytest.mark.parametrize("dist", [DiagGaussian(2), Categorical(3), MultiCategorical([2, 3]), Bernoulli(2)], ids=type)
def test_fisher_product_is_hessian_of_kl_in_parameters(dist: Distribution) -> None:
    p = torch.randn(1, dist.param_dim, generator=GEN, dtype=torch.float64)
    h = hessian(lambda z: dist.kl(p, z.unsqueeze(0)).sum(), p[0])
    u = torch.randn(1, dist.param_dim, generator=GEN, dtype=torch.float64)
    assert torch.allclose(dist.fisher_product(p, u)[0], h @ u[0], atol=1e-12)


@pytest.mark.parametrize("dist", [DiagGaussian(2), Categorical(3), MultiCategorical([2, 3]), Bernoulli(2)], ids=type)
def test_kl_to_itself_is_zero_and_mode_is_most_likely(dist: Distribution) -> None:
    p = torch.randn(4, dist.param_dim, generator=GEN, dtype=torch.float64)
    assert torch.allclose(dist.kl(p, p), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    mode = dist.mode(p)
    samples = [dist.sample(p, GEN) for _ in range(20)]
    assert all(bool((dist.log_prob(p, mode) >= dist.log_prob(p, s) - 1e-12).all()) for s in samples)


def test_categorical_sampling_frequencies() -> None:
    probs = torch.tensor([0.1, 0.6, 0.3])
    params = probs.log().expand(20000, 3)
    counts = torch.bincount(Categorical(3).sample(params, torch.Generator().manual_seed(1)), minlength=3) / 20000
    assert torch.allclose(counts, probs, atol=0.015)
