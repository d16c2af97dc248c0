"""The critic's regression on the returns: min_phi (1/N) sum (V_phi(s) - R)^2 by Adam on minibatches."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """1 - Var[target - predicted] / Var[target] (1 is perfect, <= 0 is no better than a constant)."""
    var = float(target.var())
    return math.nan if var == 0 else 1.0 - float((target - predicted).var()) / var


@torch.no_grad()
def value_loss(critic: nn.Module, obs: Tensor, returns: Tensor) -> float:
    """(1/N) sum (V(s) - R)^2 over the batch."""
    return float((critic(obs) - returns).pow(2).mean())


def linear_schedule(initial: float, steps: int, until: int) -> float:
    """initial * (1 - steps / until), never below 0 (SB3's linear schedule over the training budget)."""
    return initial * max(0.0, 1.0 - steps / max(1, until))


def fit_value(
    critic: nn.Module,
    optimizer: torch.optim.Optimizer,
    obs: Tensor,
    returns: Tensor,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
) -> None:
    """`epochs` passes of Adam over shuffled minibatches of (obs, returns) on the squared error.

    The shuffles are drawn from `generator` on the CPU (the same numbers on any device)."""
    n = obs.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(obs.device)
        for start in range(0, n, minibatch_size):
            idx = order[start : start + minibatch_size]
            loss = (critic(obs[idx]) - returns[idx]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
