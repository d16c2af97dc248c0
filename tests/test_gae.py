"""GAE against hand-computed values, with termination, truncation and several envs."""

from __future__ import annotations

import pytest
import torch

from trpo.core.advantages import gae, normalize


def test_gae_hand_computed_single_env_with_termination() -> None:
    # T = 3, gamma = 0.5, lambda = 0.5; episode terminates at t = 1, a new one starts at t = 2.
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [2.0]])
    next_v = torch.tensor([[1.0], [99.0], [4.0]])  # 99: after a termination it must not be used
    term = torch.tensor([[False], [True], [False]])
    ended = term.clone()
    a = gae(r, v, next_v, term, ended, gamma=0.5, lam=0.5)
    d2 = 3.0 + 0.5 * 4.0 - 2.0  # 3.0
    d1 = 2.0 - 1.0  # 1.0 (no bootstrap)
    d0 = 1.0 + 0.5 * 1.0 - 0.5  # 1.0
    expected = [d0 + 0.25 * d1, d1, d2]
    assert a[:, 0].tolist() == pytest.approx(expected)


def test_gae_truncation_bootstraps_but_does_not_cross_the_boundary() -> None:
    r = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[2.0], [3.0]])
    next_v = torch.tensor([[10.0], [5.0]])  # t=0 truncated: V(final_obs) = 10; t=1 bootstrap from V(s_2) = 5
    term = torch.tensor([[False], [False]])
    ended = torch.tensor([[True], [False]])
    a = gae(r, v, next_v, term, ended, gamma=0.9, lam=0.8)
    assert a[1, 0].item() == pytest.approx(1.0 + 0.9 * 5.0 - 3.0)
    assert a[0, 0].item() == pytest.approx(1.0 + 0.9 * 10.0 - 2.0)  # no lambda term from the next episode


def test_gae_several_envs_independent_and_lambda_one_is_monte_carlo() -> None:
    gamma = 0.9
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [2.0, 1.0]])
    v = torch.tensor([[0.3, 0.1], [0.2, 0.5], [0.7, 0.4]])
    next_v = torch.tensor([[0.2, 0.5], [0.7, 0.0], [0.0, 1.5]])
    term = torch.tensor([[False, False], [False, True], [True, False]])
    a = gae(r, v, next_v, term, term.clone(), gamma=gamma, lam=1.0)
    # env 0: one episode ending at t=2 by termination: A_t = discounted reward-to-go - V
    assert a[:, 0].tolist() == pytest.approx([1 + gamma**2 * 2 - 0.3, 2 * gamma - 0.2, 2 - 0.7])
    # env 1: terminates at t=1; t=2 bootstraps from 1.5
    assert a[:, 1].tolist() == pytest.approx([2 * gamma - 0.1, 2 - 0.5, 1 + gamma * 1.5 - 0.4])


def test_gae_lambda_zero_is_td_error() -> None:
    r = torch.tensor([[1.0], [2.0]])
    v = torch.tensor([[0.5], [0.25]])
    next_v = torch.tensor([[0.25], [1.0]])
    no = torch.zeros(2, 1, dtype=torch.bool)
    a = gae(r, v, next_v, no, no, gamma=0.99, lam=0.0)
    assert a[:, 0].tolist() == pytest.approx([1 + 0.99 * 0.25 - 0.5, 2 + 0.99 - 0.25])


def test_normalize_known_answer() -> None:
    """(x - mean) / (std + eps) with the unbiased std: [1, 2, 3, 6] has mean 3 and std sqrt(14 / 3)."""
    x = torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64)
    expected = (x - 3.0) / (torch.tensor(14.0 / 3.0, dtype=torch.float64).sqrt() + 1e-8)
    assert torch.allclose(normalize(x), expected, rtol=1e-12)
    assert abs(float(normalize(x + 100.0).mean())) < 1e-12
