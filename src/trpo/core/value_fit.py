"""The critic's regression on the returns: min_phi (1/N) sum (V_phi(s) - R)^2 by Adam on minibatches, and
optionally a closed-form refit of its last layer (ridge regression on the last hidden layer's features)."""

from __future__ import annotations

import math
from collections.abc import Callable

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

    The shuffles are drawn from `generator` on the CPU (the same numbers on any device). A plain MLP
    critic (`plain_mlp`) gets its gradients from `mlp_squared_error_grads` instead of autograd: the same
    numbers bit for bit, at about 0.6 of the time per minibatch step (docs/performance.md)."""
    n = obs.shape[0]
    layers = plain_mlp(critic)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(obs.device)
        for start in range(0, n, minibatch_size):
            idx = order[start : start + minibatch_size]
            if layers is not None:
                mlp_squared_error_grads(layers, obs[idx], returns[idx])
            else:
                loss = (critic(obs[idx]) - returns[idx]).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()


@torch.no_grad()
def ridge_head(features: Tensor, targets: Tensor, ridge: float) -> tuple[Tensor, Tensor]:
    """The last layer's closed-form fit: argmin over w, b of (1/N) sum_i (phi_i . w + b - y_i)^2 + ridge ||w||^2.

    The bias is not penalised, so centring removes it: w solves (Phi_c^T Phi_c / N + ridge I) w = Phi_c^T y_c / N
    (Phi_c, y_c the centred features and targets; symmetric positive definite for ridge > 0, by Cholesky),
    and b = mean(y) - mean(phi) . w. Computed in float64; returns (w [H], b []) in float64. Where a ridge too
    small for float64 leaves the matrix numerically singular (dead or collinear features), w is the
    minimum-norm solution by the pseudo-inverse instead (the limit of the ridge fit as ridge -> 0)."""
    x, y = features.double(), targets.double()
    n = x.shape[0]
    x_mean, y_mean = x.mean(0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    gram = xc.t().mm(xc) / n + ridge * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    rhs = xc.t().mv(yc) / n
    factor, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        w = torch.cholesky_solve(rhs.unsqueeze(-1), factor).squeeze(-1)
    else:
        w = torch.linalg.pinv(gram, hermitian=True).mv(rhs)
    return w, y_mean - x_mean.dot(w)


def critic_head(critic: nn.Module) -> tuple[Callable[[Tensor], Tensor], nn.Linear] | None:
    """The built-in critic's last layer and a function from observations to that layer's input features (the
    encoder, then every layer of the MLP but the last); None for a custom critic network."""
    net = getattr(critic, "net", None)
    encode = getattr(critic, "encode", None)
    if getattr(critic, "custom", True) or not isinstance(net, nn.Sequential) or encode is None:
        return None
    head = net[-1]
    if type(head) is not nn.Linear or head.out_features != 1 or head.bias is None:
        return None
    body = net[:-1]
    return (lambda obs: body(encode(obs))), head


@torch.no_grad()
def refit_head(critic: nn.Module, obs: Tensor, returns: Tensor, ridge: float) -> None:
    """Replace the critic's last layer by its ridge-regression fit (`ridge_head`) on the batch, the other layers
    as Adam left them: the last layer then minimises the squared error on this batch (plus the penalty) exactly."""
    parts = critic_head(critic)
    if parts is None:
        raise ValueError("refit_head needs the built-in critic (an MLP ending in one linear output)")
    features, head = parts
    w, b = ridge_head(features(obs), returns, ridge)
    head.weight.copy_(w.unsqueeze(0))
    head.bias.copy_(b.reshape(1))


MLPLayers = tuple[tuple[nn.Linear, ...], tuple[str, ...]]
"""A plain MLP's Linear layers and the activation after each hidden one ('tanh' or 'relu')."""


def plain_mlp(critic: nn.Module) -> MLPLayers | None:
    """The layers of a critic that is a plain MLP on the stored observations (Linear, Tanh or ReLU,
    ..., Linear to one output, no encoder, float parameters that require gradients); None for anything
    else (custom networks, encoders, other activations), which autograd differentiates."""
    net = getattr(critic, "net", None)
    if (
        getattr(critic, "encoder", True) is not None
        or getattr(critic, "custom", True)
        or not isinstance(net, nn.Sequential)
    ):
        return None
    modules = list(net)
    linears, activations = modules[0::2], modules[1::2]
    names = {nn.Tanh: "tanh", nn.ReLU: "relu"}
    if (
        len(modules) % 2 == 0
        or not all(type(m) is nn.Linear and m.bias is not None for m in linears)
        or not all(type(m) in names and not getattr(m, "inplace", False) for m in activations)
        or linears[-1].out_features != 1
        or not all(p.requires_grad and p.is_floating_point() for p in net.parameters())
    ):
        return None
    return tuple(linears), tuple(names[type(m)] for m in activations)  # type: ignore[arg-type]


@torch.no_grad()
def mlp_squared_error_grads(layers: MLPLayers, x: Tensor, y: Tensor) -> None:
    """Set `.grad` of every parameter of a plain MLP v(x) to the gradient of (1/n) sum (v(x) - y)^2.

    Back-propagation written out, with the operations autograd runs for Linear, Tanh, ReLU and the mean
    squared error (addmm forward; grad W = delta^T h, grad b = sum of delta, delta W back; aten's
    tanh_backward and threshold_backward), so the gradients are the same numbers bit for bit
    (tests/test_value_fit.py). Why not autograd: for the critic's small minibatches (128 x 64) its
    per-operation bookkeeping costs more than the arithmetic, and torch.compile did not remove it
    (docs/performance.md)."""
    linears, activations = layers
    hidden = [x]
    h = x
    for linear, activation in zip(linears[:-1], activations, strict=True):
        z = torch.addmm(linear.bias, h, linear.weight.t())
        h = torch.tanh(z) if activation == "tanh" else torch.relu(z)
        hidden.append(h)
    out = torch.addmm(linears[-1].bias, h, linears[-1].weight.t()).squeeze(-1)
    diff = out - y
    delta = (diff * (2.0 / diff.numel())).unsqueeze(-1)  # d/d out of mean((out - y)^2)
    for i in range(len(linears) - 1, -1, -1):
        linear, h_in = linears[i], hidden[i]
        linear.weight.grad = delta.t().mm(h_in)
        linear.bias.grad = delta.sum(0)
        if i > 0:
            back = delta.mm(linear.weight)
            if activations[i - 1] == "tanh":
                delta = torch.ops.aten.tanh_backward(back, h_in)
            else:
                delta = torch.ops.aten.threshold_backward(back, h_in, 0)
