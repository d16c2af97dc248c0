"""Property-based tests (hypothesis) of the math invariants."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trpo.core.advantages import gae
from trpo.core.trust_region import Candidate, backtracking_line_search, conjugate_gradient


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 25), seed=st.integers(0, 2**31 - 1), log_condition=st.floats(0, 4))
def test_cg_reaches_tolerance_on_random_spd_systems(n: int, seed: int, log_condition: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    a = q @ torch.diag(torch.logspace(0, log_condition, n, dtype=torch.float64)) @ q.T
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iters=4 * n + 10, tol=1e-9)
    assert result.relative_residual < 1e-9
    assert float(torch.linalg.vector_norm(a @ result.x - b) / torch.linalg.vector_norm(b)) < 1e-8


@settings(max_examples=100, deadline=None)
@given(
    kls=st.lists(st.one_of(st.floats(0, 1), st.just(math.nan), st.just(math.inf)), min_size=1, max_size=12),
    gains=st.lists(st.one_of(st.floats(-1, 1), st.just(math.nan)), min_size=12, max_size=12),
    max_kl=st.floats(1e-4, 0.5),
)
def test_line_search_never_accepts_kl_above_delta(kls: list[float], gains: list[float], max_kl: float) -> None:
    """Whatever the candidates measure, an accepted one has finite KL <= delta and positive gain."""
    candidates = iter([Candidate(g, k, k) for k, g in zip(kls, gains, strict=False)])
    result = backtracking_line_search(
        lambda theta: next(candidates), torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64),
        max_kl=max_kl, backtrack_coef=0.5, backtrack_iters=len(kls),
    )  # fmt: skip
    if result.accepted:
        assert result.candidate is not None
        assert math.isfinite(result.candidate.kl) and result.candidate.kl <= max_kl
        assert result.candidate.surrogate_gain > 0
    else:
        assert not any(0 <= k <= max_kl and g > 0 for k, g in zip(kls, gains, strict=False) if math.isfinite(k))


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):  # type: ignore[no-untyped-def]
    """The textbook recursion, one env and one step at a time, in plain Python."""
    t_len, n_envs = len(rewards), len(rewards[0])
    out = [[0.0] * n_envs for _ in range(t_len)]
    for e in range(n_envs):
        running = 0.0
        for t in reversed(range(t_len)):
            bootstrap = 0.0 if terminated[t][e] else next_values[t][e]
            delta = rewards[t][e] + gamma * bootstrap - values[t][e]
            running = delta + (0.0 if (terminated[t][e] or truncated[t][e]) else gamma * lam * running)
            out[t][e] = running
    return out


@settings(max_examples=100, deadline=None)
@given(
    t_len=st.integers(1, 20),
    n_envs=st.integers(1, 4),
    gamma=st.floats(0.5, 1.0),
    lam=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_gae_equals_reference_recursion(t_len: int, n_envs: int, gamma: float, lam: float, data: st.DataObject) -> None:
    floats = st.floats(-10, 10)

    def grid(elements: st.SearchStrategy) -> list:  # type: ignore[type-arg]
        return data.draw(st.lists(st.lists(elements, min_size=n_envs, max_size=n_envs), min_size=t_len, max_size=t_len))

    rewards, values, next_values = grid(floats), grid(floats), grid(floats)
    terminated, truncated = grid(st.booleans()), grid(st.booleans())
    truncated = [
        [tr and not te for tr, te in zip(r1, r2, strict=True)] for r1, r2 in zip(truncated, terminated, strict=True)
    ]
    term = torch.tensor(terminated)
    ended = term | torch.tensor(truncated)
    got = gae(torch.tensor(rewards), torch.tensor(values), torch.tensor(next_values), term, ended, gamma, lam)
    expected = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    assert torch.allclose(got, torch.tensor(expected), rtol=1e-4, atol=1e-3)
