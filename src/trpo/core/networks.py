"""Actor and critic networks: two separate MLPs, never selected by parameter name."""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.nn import functional as nnf

from trpo.core.distributions import Bernoulli, Categorical, DiagGaussian, Distribution, MultiCategorical
from trpo.errors import ConfigError, UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}
"""The short names; any other element-wise activation of torch.nn is taken by its class name."""


@functools.cache
def activation_class(name: str) -> type[nn.Module]:
    """The torch.nn activation `name` names: a short name of ACTIVATIONS, or the class name (any case) of
    an element-wise activation in torch.nn that takes no arguments. ConfigError otherwise."""
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]
    by_name = {c.lower(): c for c in torch.nn.modules.activation.__all__}
    cls = getattr(nn, by_name.get(name.lower(), ""), None)
    if cls is not None and _is_elementwise(cls):
        return cls
    known = sorted([*ACTIVATIONS, *(c for c in by_name.values() if _is_elementwise(getattr(nn, c)))])
    raise ConfigError(
        f"activation {name!r} is not an element-wise torch.nn activation; choose one of {', '.join(known)}"
    )


@functools.cache
def _is_elementwise(cls: type[nn.Module]) -> bool:
    """Constructible without arguments and acting on each element alone (not Softmax, GLU, attention)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Softmax's implicit-dimension warning
            module = cls()
            x = torch.linspace(-3, 3, 12).reshape(3, 4)
            y = module(x)
            return bool(y.shape == x.shape and torch.allclose(module(x[:, :1]), y[:, :1], atol=1e-3))
    except Exception:  # a class that needs arguments or other inputs is no activation here
        return False


def observation_dim(space: spaces.Space) -> int:
    """Size of the flat observation vector; only real-valued Box observations are supported, and not
    images (3-D, or 2-D of uint8), which an MLP on raw pixels would not learn from."""
    if not isinstance(space, spaces.Box):
        raise UserError(
            f"unsupported observation space {space}: trpo needs a Box observation space; wrap the "
            "environment (e.g. --wrapper gymnasium.wrappers:FlattenObservation) to turn it into one"
        )
    if len(space.shape) >= 3 or (len(space.shape) == 2 and space.dtype == np.uint8):
        raise UserError(
            f"observation space {space} holds images: pixel observations are not supported yet (trpo's "
            "policies are MLPs on flat vectors, no CNN); give the environment a wrapper that turns them into "
            "a feature vector, or flatten them with --wrapper gymnasium.wrappers:FlattenObservation"
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
            layers.append(activation_class(activation)())
    return nn.Sequential(*layers)


class FastForward:
    """The forward pass of an `mlp()` for no-grad inference in the rollout loop, without nn.Module
    call overhead: addmm on the module's own parameter tensors (updated in place by training), so it
    always computes what the module computes."""

    FUNCTIONS: ClassVar[dict[type[nn.Module], Callable[[Tensor], Tensor]]] = {
        nn.Tanh: torch.tanh,
        nn.ReLU: torch.relu,
        nn.ELU: nnf.elu,
        nn.LeakyReLU: nnf.leaky_relu,
        nn.SiLU: nnf.silu,
    }

    def __init__(self, layers: nn.Module) -> None:
        self.ops: list[tuple[Tensor, Tensor] | Callable[[Tensor], Tensor]] = []
        for layer in layers.children() if isinstance(layers, nn.Sequential) else [layers]:
            if isinstance(layer, nn.Linear):
                assert layer.bias is not None
                self.ops.append((layer.weight, layer.bias))
            else:  # the known activations as plain functions; any other one by calling the module
                self.ops.append(self.FUNCTIONS.get(type(layer), layer))

    def __call__(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = torch.addmm(op[1], x, op[0].t()) if isinstance(op, tuple) else op(x)
        return x


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
        use_sde: bool = False,
        body: nn.Module | None = None,
    ) -> None:
        """`body`: a custom network from observations [N, obs_dim] to the distribution's mean (Box) or
        logits [N, head_dim] in place of the MLP (Gaussian policies keep their state-independent log-std)."""
        super().__init__()
        self.distribution = distribution
        self.gaussian = isinstance(distribution, DiagGaussian)
        if use_sde and not self.gaussian:
            raise UserError("use_sde needs a Box action space (it shapes Gaussian exploration noise)")
        if use_sde and body is not None:
            raise UserError("use_sde needs the MLP's last hidden features; it cannot be used with a custom actor")
        self.use_sde = use_sde
        head_dim = distribution.param_dim // 2 if self.gaussian else distribution.param_dim
        self.custom = body is not None
        self.features: nn.Module
        self.head: nn.Module
        if body is not None:
            _check_output(body, obs_dim, head_dim, "actor")
            self.features, self.head = body, nn.Identity()
        else:
            net = mlp([obs_dim, *hidden_sizes, head_dim], activation, ortho_init, out_gain=0.01)
            self.features, self.head = net[:-1], net[-1]
        # Gaussian policies own a log-std parameter: per action (state-independent), or with gSDE per
        # (feature, action) pair, the log of sigma in noise = z(s) E, E ~ N(0, sigma^2).
        log_std_shape = (hidden_sizes[-1], head_dim) if use_sde else (head_dim,)
        self.log_std = nn.Parameter(torch.full(log_std_shape, float(log_std_init))) if self.gaussian else None

    def forward(self, obs: Tensor) -> Tensor:
        z = self.features(obs)
        out = self.head(z)
        if self.log_std is None:
            return out
        if self.use_sde:
            return torch.cat([out, sde_log_std(z, self.log_std)], dim=-1)
        return torch.cat([out, self.log_std.expand_as(out)], dim=-1)


def sde_log_std(z: Tensor, log_sigma: Tensor, eps: float = 1e-6) -> Tensor:
    """log std of gSDE noise z E with E_ij ~ N(0, sigma_ij^2): 1/2 log(sum_i z_i^2 sigma_ij^2 + eps).

    The features are detached: exploration shapes the noise, only sigma learns through it.
    """
    variance = z.detach().pow(2) @ torch.exp(2 * log_sigma)
    return 0.5 * torch.log(variance + eps)


class ActionSampler:
    """Samples actions from the current actor in the rollout loop (no autograd, no module overhead).

    Call `start_rollout()` before each rollout: it fixes what is constant for one policy version.
    """

    def __init__(self, actor: Actor, generator: torch.Generator) -> None:
        self.actor = actor
        self.generator = generator
        self.features = FastForward(actor.features)
        self.head = FastForward(actor.head)
        self.std: Tensor | None = None

    def start_rollout(self) -> None:
        if self.actor.log_std is not None and not self.actor.use_sde:
            self.std = torch.exp(self.actor.log_std.detach())

    @torch.no_grad()
    def __call__(self, obs: Tensor) -> Tensor:
        out = self.head(self.features(obs))
        if self.std is None:
            return self.actor.distribution.sample(out, self.generator)
        noise = torch.randn(out.shape, generator=self.generator)  # as DiagGaussian.sample draws it
        return out + self.std * noise


class StateDependentNoise(ActionSampler):
    """gSDE sampling: a = mean(s) + z(s) E_env, each env's E ~ N(0, sigma^2) held for `sample_freq` steps."""

    def __init__(self, actor: Actor, n_envs: int, sample_freq: int, generator: torch.Generator) -> None:
        assert actor.log_std is not None and actor.use_sde
        super().__init__(actor, generator)
        self.sample_freq = sample_freq
        self.matrices = torch.zeros(n_envs, *actor.log_std.shape)
        self.steps: int | None = None
        """Steps taken with the current matrices (None: none drawn yet)."""

    def resample(self) -> None:
        assert self.actor.log_std is not None
        noise = torch.randn(self.matrices.shape, generator=self.generator)
        self.matrices = noise * torch.exp(self.actor.log_std.detach())
        self.steps = 0

    def start_rollout(self) -> None:
        self.resample()  # noise of this policy version, never of the previous one

    @torch.no_grad()
    def __call__(self, obs: Tensor) -> Tensor:
        """Sample one action per env for observations [n_envs, obs_dim]."""
        if self.steps is None or (self.sample_freq > 0 and self.steps == self.sample_freq):
            self.resample()
        assert self.steps is not None
        self.steps += 1
        z = self.features(obs)
        return self.head(z) + torch.bmm(z.unsqueeze(1), self.matrices).squeeze(1)


class Critic(nn.Module):
    """V_phi: maps observations to a scalar value estimate."""

    def __init__(
        self,
        obs_dim: int,
        hidden_sizes: tuple[int, ...],
        activation: str,
        ortho_init: bool = True,
        body: nn.Module | None = None,
    ) -> None:
        """`body`: a custom network from observations [N, obs_dim] to values [N] or [N, 1] in place of the MLP."""
        super().__init__()
        self.custom = body is not None
        if body is not None:
            _check_output(body, obs_dim, 1, "critic")
            self.net: nn.Module = body
        else:
            self.net = mlp([obs_dim, *hidden_sizes, 1], activation, ortho_init, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        out = self.net(obs)
        return out.squeeze(-1) if out.dim() == 2 else out


def _check_output(body: nn.Module, obs_dim: int, out_dim: int, what: str) -> None:
    """A custom network must map [N, obs_dim] float32 observations to [N, out_dim] (a value also [N])."""
    if not isinstance(body, nn.Module):
        raise UserError(f"the custom {what} must be a torch.nn.Module (got {type(body).__name__})")
    try:
        with torch.no_grad():
            out = body(torch.zeros(2, obs_dim, device=next(body.parameters(), torch.zeros(0)).device))
    except Exception as exc:  # the user's module: any failure is theirs to see, in one line
        raise UserError(f"the custom {what} failed on observations of shape [N, {obs_dim}]: {exc}") from None
    fits = tuple(out.shape) == (2, out_dim) or (out_dim == 1 and tuple(out.shape) == (2,))
    if not fits:
        raise UserError(
            f"the custom {what} must map observations [N, {obs_dim}] to [N, {out_dim}]; it returned {list(out.shape)}"
        )
