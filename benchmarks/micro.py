"""Micro-benchmarks behind docs/performance.md: one number per design choice, 1 torch thread.

    python benchmarks/micro.py

Shapes are HalfCheetah's (17-dim observations, 6-dim actions) with 64x64 tanh networks.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from torch.func import functional_call, jvp, linearize, vjp

from _deps import require
from trpo.algos.learner import explained_variance
from trpo.core import value_fit
from trpo.core.distributions import DiagGaussian
from trpo.core.networks import Actor, Critic, FastForward
from trpo.core.trust_region import analytic_fvp, detached_params, double_backprop_fvp, flatten

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


def per_call_us(fn: Callable[[], object], n: int = 2000, warmup: int = 100) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def once_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def fisher_products() -> None:
    torch.manual_seed(0)
    dist = DiagGaussian(6)
    actor = Actor(17, dist, (64, 64), "tanh")
    obs = torch.randn(2048, 17)
    params = detached_params(actor)
    v = torch.randn(flatten(params).numel(), dtype=torch.float64)
    analytic_fvp(actor, params, obs, dist)  # warm-up
    setup = once_ms(lambda: analytic_fvp(actor, params, obs, dist))
    fvp = analytic_fvp(actor, params, obs, dist)
    per_product = per_call_us(lambda: fvp(v), 50) / 1e3
    print(f"analytic FVP (VJP of the VJP, built once): set-up {setup:.1f} ms, {per_product:.2f} ms per product")

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(actor, p, (obs,))

    tangent = {k: torch.randn_like(x) for k, x in params.items()}
    _, vjp_fn = vjp(f, params)
    with_jvp = per_call_us(lambda: vjp_fn(jvp(f, (params,), (tangent,))[1]), 50) / 1e3
    print(f"torch.func.jvp every product (+ reused VJP): {with_jvp:.2f} ms per product")
    linearize(f, params)  # the first call traces more
    print(f"torch.func.linearize set-up: {np.median([once_ms(lambda: linearize(f, params)) for _ in range(3)]):.0f} ms")
    generic = double_backprop_fvp(actor, params, obs, dist)
    print(f"double-backprop FVP (generic path): {per_call_us(lambda: generic(v), 50) / 1e3:.2f} ms per product")


def rollout_inference() -> None:
    torch.manual_seed(0)
    actor, critic = Actor(17, DiagGaussian(6), (64, 64), "tanh"), Critic(17, (64, 64), "tanh")
    obs = torch.randn(2, 17)
    fast_actor = FastForward(actor.features)
    fast_head, fast_critic = FastForward(actor.head), FastForward(critic.net)
    with torch.no_grad():
        modules = per_call_us(lambda: (actor(obs), critic(obs)))
        fast = per_call_us(lambda: (fast_head(fast_actor(obs)), fast_critic(obs)))
    weights = [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy())
        for m in critic.net
        if isinstance(m, torch.nn.Linear)
    ]

    def numpy_mlp(x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(weights):
            x = x @ w + b
            if i < len(weights) - 1:
                x = np.tanh(x)
        return x

    numpy_both = 2 * per_call_us(lambda: numpy_mlp(obs.numpy()))
    print(
        f"actor + critic forward for 2 states: nn.Module {modules:.1f} us, addmm chain {fast:.1f} us, "
        f"NumPy ~{numpy_both:.1f} us"
    )


def critic_fit() -> None:
    torch.manual_seed(0)
    base = Critic(17, (64, 64), "tanh")
    obs = torch.randn(2048, 17)
    returns = torch.tanh(obs[:, :4]).sum(1) * 3 + 0.1 * torch.randn(2048)

    def fit(epochs: int, minibatch: int, **adam: bool) -> tuple[float, float]:
        critic = copy.deepcopy(base)
        opt = torch.optim.Adam(critic.parameters(), lr=1e-3, **adam)
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(2048, generator=gen)
            for s in range(0, 2048, minibatch):
                idx = order[s : s + minibatch]
                loss = (critic(obs[idx]) - returns[idx]).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            return seconds * 1e3, explained_variance(critic(obs), returns)

    for name, kwargs in (
        ("single-tensor", {"foreach": False}),
        ("foreach", {"foreach": True}),
        ("fused", {"fused": True}),
    ):
        ms, ev = fit(20, 128, **kwargs)
        print(f"critic fit 20 epochs x 128 (320 Adam steps), {name}: {ms:.0f} ms, explained variance {ev:.3f}")
    for epochs, minibatch in ((5, 512), (10, 512), (10, 256)):
        ms, ev = fit(epochs, minibatch, fused=True)
        print(f"critic fit {epochs} epochs x {minibatch}, fused: {ms:.0f} ms, explained variance {ev:.3f}")
    # trpo's fit_value: autograd, or the written-out gradients of a plain MLP (the same numbers); interleaved
    times: dict[str, list[float]] = {"autograd": [], "written-out": []}
    for _ in range(5):
        for name, layers in (("autograd", None), ("written-out", value_fit.plain_mlp)):
            critic = copy.deepcopy(base)
            opt = torch.optim.Adam(critic.parameters(), lr=1e-3, fused=True)
            original = value_fit.plain_mlp
            value_fit.plain_mlp = layers or (lambda c: None)  # type: ignore[assignment]
            try:
                start = time.perf_counter()
                value_fit.fit_value(critic, opt, obs, returns, 10, 128, torch.Generator().manual_seed(0))
                times[name].append((time.perf_counter() - start) * 1e3)
            finally:
                value_fit.plain_mlp = original
    for name, ms_list in times.items():
        ms = sorted(ms_list)[len(ms_list) // 2]
        print(f"fit_value 10 epochs x 128 on 2048 (160 Adam steps), {name} gradients: {ms:.0f} ms (median of 5)")


def kernels() -> None:
    h = torch.randn(2048, 64)
    print(
        f"2048x64: torch.tanh {per_call_us(lambda: torch.tanh(h), 500):.0f} us, torch.sigmoid "
        f"{per_call_us(lambda: torch.sigmoid(h), 500):.0f} us, 2*sigmoid(2x)-1 "
        f"{per_call_us(lambda: torch.sigmoid(h * 2).mul_(2).sub_(1), 500):.0f} us"
    )
    x, w = torch.randn(128, 64), torch.randn(64, 64)
    torch_mm, numpy_mm = per_call_us(lambda: x @ w.t()), per_call_us(lambda: x.numpy() @ w.numpy().T)
    print(f"128x64x64 matmul: torch {torch_mm:.1f} us, NumPy {numpy_mm:.1f} us")


def vector_env() -> None:
    for copy_obs in (True, False):
        envs = SyncVectorEnv(
            [lambda: gym.make("HalfCheetah-v5")] * 16, autoreset_mode=AutoresetMode.SAME_STEP, copy=copy_obs
        )
        envs.reset(seed=0)
        action = envs.action_space.sample()
        step_us = per_call_us(lambda e=envs, a=action: e.step(a), 1000)
        print(f"SyncVectorEnv, 16 HalfCheetah-v5, copy={copy_obs}: {step_us:.0f} us per step")
        envs.close()
    env = gym.make("HalfCheetah-v5")
    env.reset(seed=0)
    action = env.action_space.sample()

    def step() -> None:
        if any(env.step(action)[2:4]):
            env.reset()

    print(f"one HalfCheetah-v5 step (gym.make, 1 process): {per_call_us(step, 5000):.1f} us")


def main() -> None:
    require(__file__, env_ids=["HalfCheetah-v5"])
    print(f"torch {torch.__version__}, gymnasium {gym.__version__}, 1 thread\n")
    for section in (fisher_products, rollout_inference, critic_fit, kernels, vector_env):
        section()


if __name__ == "__main__":
    main()
