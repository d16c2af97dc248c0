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
