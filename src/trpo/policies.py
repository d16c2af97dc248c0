"""Actor and critic networks: two separate MLPs, never selected by parameter name."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from trpo.distributions import Bernoulli, Categorical, DiagGaussian, Distribution, MultiCategorical
from trpo.errors import UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


def observation_dim(space: spaces.Space) -> int:
    """Size of the flat observation vector; only real-valued Box observations are supported."""
    if not isinstance(space, spaces.Box):
        raise UserError(
            f"unsupported observation space {space}: trpo needs a Box observation space; wrap the "
            "environment (e.g. gymnasium.wrappers.FlattenObservation) to turn it into one"
        )
    return int(np.prod(space.shape))


def make_distribution(space: spaces.Space) -> Distribution:
    """The action distribution for a Gymnasium action space."""
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return DiagGaussian(space.shape[0])
    if isinstance(space, spaces.Discrete):
        return Categorical(int(space.n))
    if isinstance(space, spaces.MultiDiscrete) and len(space.nvec.shape) == 1:
        return MultiCategorical([int(n) for n in space.nvec])
    if isinstance(space, spaces.MultiBinary) and isinstance(space.n, (int, np.integer)):
        return Bernoulli(int(space.n))
    raise UserError(
        f"unsupported action space {space}: trpo supports Box (1-D), Discrete, MultiDiscrete (1-D) "
        "and MultiBinary (1-D) action spaces; flatten or wrap the environment's action space"
    )


def mlp(sizes: list[int], activation: str, ortho_init: bool, out_gain: float) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(fan_in, fan_out)
        is_last = i == len(sizes) - 2
        if ortho_init:
            nn.init.orthogonal_(linear.weight, gain=out_gain if is_last else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not is_last:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """pi_theta: maps observations to the parameter tensor P of the action distribution."""

    def __init__(
        self,
        obs_dim: int,
        distribution: Distribution,
        hidden_sizes: tuple[int, ...],
        activation: str,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.distribution = distribution
        self.gaussian = isinstance(distribution, DiagGaussian)
        head_dim = distribution.param_dim // 2 if self.gaussian else distribution.param_dim
        self.net = mlp([obs_dim, *hidden_sizes, head_dim], activation, ortho_init, out_gain=0.01)
        # A state-independent log-std is a parameter of the actor; other distributions have none.
        self.log_std = nn.Parameter(torch.full((head_dim,), float(log_std_init))) if self.gaussian else None

    def forward(self, obs: Tensor) -> Tensor:
        out = self.net(obs)
        if self.log_std is None:
            return out
        return torch.cat([out, self.log_std.expand_as(out)], dim=-1)


class Critic(nn.Module):
    """V_phi: maps observations to a scalar value estimate."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...], activation: str, ortho_init: bool = True) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden_sizes, 1], activation, ortho_init, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)
