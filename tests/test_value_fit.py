"""The critic's fit: the written-out gradients of a plain MLP are autograd's, bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trpo.core import value_fit
from trpo.core.networks import Critic
from trpo.core.value_fit import fit_value, mlp_squared_error_grads, plain_mlp


def autograd_grads(critic: Critic, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    critic.zero_grad(set_to_none=True)
    (critic(x) - y).pow(2).mean().backward()
    return [p.grad.clone() for p in critic.parameters()]  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(("hidden", "n"), [((64, 64), 128), ((32,), 100), ((16, 8, 4), 1), ((), 37)])
def test_written_out_gradients_equal_autograd_bit_for_bit(
    dtype: torch.dtype, activation: str, hidden: tuple[int, ...], n: int
) -> None:
    torch.manual_seed(len(hidden) + n)
    critic = Critic(5, hidden, activation).to(dtype)
    x, y = torch.randn(n, 5, dtype=dtype), torch.randn(n, dtype=dtype) * 3
    expected = autograd_grads(critic, x, y)
    layers = plain_mlp(critic)
    assert layers is not None
    critic.zero_grad(set_to_none=True)
    mlp_squared_error_grads(layers, x, y)
    got = [p.grad for p in critic.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    # and they are the gradient: a finite-difference check on one weight in float64
    if dtype == torch.float64 and hidden:
        w = critic.net[0].weight
        eps = 1e-6
        with torch.no_grad():
            w[0, 0] += eps
            up = float((critic(x) - y).pow(2).mean())
            w[0, 0] -= 2 * eps
            down = float((critic(x) - y).pow(2).mean())
            w[0, 0] += eps
        assert abs((up - down) / (2 * eps) - float(got[0][0, 0])) < 1e-6  # type: ignore[index]


def test_a_whole_fit_gives_the_same_critic_as_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adam over shuffled minibatches (the last one short): the same parameters either way."""
    torch.manual_seed(0)
    obs, returns = torch.randn(300, 4), torch.randn(300)
    fitted = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(value_fit, "plain_mlp", lambda critic: None)
        torch.manual_seed(1)
        critic = Critic(4, (64, 64), "tanh")
        optimizer = torch.optim.Adam(critic.parameters(), lr=1e-3, fused=True)
        fit_value(critic, optimizer, obs, returns, 3, 128, torch.Generator().manual_seed(2))
        fitted.append([p.detach().clone() for p in critic.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*fitted, strict=True))


def test_anything_but_a_plain_mlp_is_left_to_autograd() -> None:
    assert plain_mlp(Critic(4, (8,), "tanh")) is not None
    assert plain_mlp(Critic(4, (8,), "elu")) is None  # an activation without a written-out derivative
    assert plain_mlp(Critic(4, (8,), "tanh", body=nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))) is None
    frozen = Critic(4, (8,), "relu")
    frozen.net[0].weight.requires_grad_(False)
    assert plain_mlp(frozen) is None
    inplace = Critic(4, (8,), "relu")
    inplace.net[1] = nn.ReLU(inplace=True)
    assert plain_mlp(inplace) is None


def ridge_objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, ridge: float) -> torch.Tensor:
    return (x.mv(w) + b - y).pow(2).mean() + ridge * w.dot(w)


@pytest.mark.parametrize(("n", "h", "ridge"), [(200, 8, 1e-3), (50, 64, 1e-2), (7, 3, 0.5), (1000, 16, 1e-8)])
def test_ridge_head_is_the_penalised_least_squares_solution(n: int, h: int, ridge: float) -> None:
    """Against a generic solver: the penalised problem is ordinary least squares on [X 1; sqrt(N ridge) I 0]
    against [y; 0] (the bias column unpenalised); and the objective's gradient vanishes at the answer."""
    g = torch.Generator().manual_seed(n + h)
    x = torch.randn(n, h, generator=g, dtype=torch.float64) * 2 + 0.5
    y = x[:, 0] * 3 - 1 + torch.randn(n, generator=g, dtype=torch.float64)
    w, b = value_fit.ridge_head(x, y, ridge)
    design = torch.cat([
        torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1),
        torch.cat([(n * ridge) ** 0.5 * torch.eye(h, dtype=x.dtype), torch.zeros(h, 1, dtype=x.dtype)], 1),
    ])  # fmt: skip
    solution = torch.linalg.lstsq(design, torch.cat([y, torch.zeros(h, dtype=x.dtype)]).unsqueeze(-1)).solution
    assert torch.allclose(w, solution[:h, 0], atol=1e-9, rtol=1e-9)
    assert torch.allclose(b, solution[h, 0], atol=1e-9, rtol=1e-9)
    wg, bg = w.clone().requires_grad_(), b.clone().requires_grad_()
    ridge_objective(x, y, wg, bg, ridge).backward()
    assert wg.grad is not None and bg.grad is not None
    assert wg.grad.abs().max() < 1e-10 and bg.grad.abs() < 1e-10
    # a float32 input gets a float64 answer, the same to float32 precision
    w32, b32 = value_fit.ridge_head(x.float(), y.float(), ridge)
    assert w32.dtype == torch.float64 and torch.allclose(w32, w, atol=1e-4) and torch.allclose(b32, b, atol=1e-4)


@pytest.mark.parametrize("ridge", [1e-20, 5e-324])
def test_a_ridge_too_small_for_dead_or_collinear_features_gives_the_minimum_norm_fit(ridge: float) -> None:
    """Dead (constant) and duplicated features make the Gram matrix singular; a ridge float64 cannot see must not
    crash the fit: the answer is the least-squares fit of least norm, as torch.linalg.lstsq (gelsd) gives it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 4, generator=g, dtype=torch.float64)
    x[:, 2] = 0.7
    x[:, 3] = 2 * x[:, 0]
    y = torch.randn(100, generator=g, dtype=torch.float64)
    w, b = value_fit.ridge_head(x, y, ridge)
    xc = x - x.mean(0)
    expected = torch.linalg.lstsq(xc, (y - y.mean()).unsqueeze(-1), driver="gelsd").solution[:, 0]
    assert torch.allclose(w, expected, atol=1e-8) and torch.isfinite(b)


def test_refit_head_leaves_the_body_and_minimises_the_last_layer() -> None:
    torch.manual_seed(3)
    critic = Critic(5, (16, 8), "tanh").double()
    x = torch.randn(300, 5, dtype=torch.float64)
    y = x[:, 0].sin() * 4 + x[:, 1]
    body = [p.clone() for p in critic.net[:-1].parameters()]
    before = value_fit.value_loss(critic, x, y)
    value_fit.refit_head(critic, x, y, 1e-6)
    assert all(torch.equal(a, b) for a, b in zip(body, critic.net[:-1].parameters(), strict=True))
    assert value_fit.value_loss(critic, x, y) < before
    critic.zero_grad(set_to_none=True)
    ((critic(x) - y).pow(2).mean() + 1e-6 * critic.net[-1].weight.pow(2).sum()).backward()
    head = critic.net[-1]
    assert head.weight.grad is not None and head.bias.grad is not None
    assert head.weight.grad.abs().max() < 1e-9 and head.bias.grad.abs().max() < 1e-9
    # the features are the encoder's then the hidden layers': a critic with no hidden layer is linear regression
    linear = Critic(5, (), "tanh").double()
    value_fit.refit_head(linear, x, y, 1e-3)
    w, b = value_fit.ridge_head(x, y, 1e-3)
    assert torch.allclose(linear.net[-1].weight[0], w) and torch.allclose(linear.net[-1].bias[0], b)


def test_refit_head_refuses_a_custom_critic() -> None:
    custom = Critic(3, (), "tanh", body=nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)))
    assert value_fit.critic_head(custom) is None
    with pytest.raises(ValueError, match="built-in critic"):
        value_fit.refit_head(custom, torch.zeros(4, 3), torch.zeros(4), 1e-3)
