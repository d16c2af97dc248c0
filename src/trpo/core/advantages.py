"""Advantages: generalised advantage estimation (Schulman et al. 2016) and batch normalisation."""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    ended: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalised advantage estimates for [T, E] arrays of transitions.

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma lambda (1 - ended_t) A_{t+1}

    `next_values[t]` is V of the state reached at step t: the next stored state, or, at a
    truncation, V(final observation). `ended` is terminated or truncated: the recursion never
    crosses an episode boundary, and only a termination cuts the bootstrap.
    """
    not_terminated = 1.0 - terminated.to(values.dtype)
    not_ended = 1.0 - ended.to(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_ended[t] * running
        advantages[t] = running
    return advantages


def normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / (std + eps)."""
    return (x - x.mean()) / (x.std() + eps)
