"""Time of one TRPO update (policy step + critic fit) against policy size and batch size.

A synthetic batch with HalfCheetah's shapes (17-dim observations, 6-dim Gaussian actions) so that only
the update is timed. The update's cost should grow linearly in parameters x batch size.

    python benchmarks/scaling.py --repeats 3
    python benchmarks/scaling.py --repeats 3 --devices cpu cuda   # update time vs policy size per device

With --devices, each device (`device` config field; cuda only where CUDA is available) times the update
for policies from 64x64 to 1024x1024 (about 1.1M actor parameters) on a batch of 8,192.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from _deps import require
from trpo import TRPO, TRPOConfig
from trpo.sampling.rollout import Batch

warnings.filterwarnings("ignore")


def synthetic_batch(n: int, obs_dim: int, act_dim: int, seed: int) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(n, generator=gen)
    advantages = torch.randn(n, generator=gen)
    return Batch(
        obs=torch.randn(n, obs_dim, generator=gen),
        actions=torch.randn(n, act_dim, generator=gen),
        advantages=advantages,
        returns=advantages + values,
        values=values,
    )


def time_update(hidden: tuple[int, ...], batch_size: int, repeats: int, device: str = "cpu") -> tuple[float, int]:
    config = TRPOConfig(
        n_envs=1, n_steps=batch_size, hidden_sizes=hidden, cg_iters=10, vf_epochs=5, vf_minibatch_size=512,
        device=device,
    )  # fmt: skip
    agent = TRPO("HalfCheetah-v5", config, seed=0)
    params = sum(p.numel() for p in agent.actor.parameters())
    agent.update(synthetic_batch(batch_size, 17, 6, 0))  # warm-up
    times = []
    for r in range(repeats):
        batch = synthetic_batch(batch_size, 17, 6, r + 1)  # on the CPU, as a sampler delivers it
        start = time.perf_counter()
        agent.update(batch)
        if agent.device.type == "cuda":
            torch.cuda.synchronize(agent.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), params


def by_device(devices: list[str], repeats: int) -> None:
    print("| actor hidden sizes | actor parameters | " + " | ".join(f"{d} update ms" for d in devices) + " |")
    print("|---|---|" + "---|" * len(devices))
    for hidden in ((64, 64), (256, 256), (512, 512), (1024, 1024)):
        cells, params = [], 0
        for device in devices:
            seconds, params = time_update(hidden, 8192, repeats, device)
            cells.append(f"{seconds * 1e3:.1f}")
        print(f"| {'x'.join(map(str, hidden))} | {params:,} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", nargs="+", help="time the update per device (cpu, cuda, cuda:N)")
    args = parser.parse_args()
    require(__file__, env_ids=["HalfCheetah-v5"])
    print(f"torch {torch.__version__}, 1 thread, CG 10 iterations, critic 5 epochs of 512\n")
    if args.devices:
        unavailable = [d for d in args.devices if d.startswith("cuda") and not torch.cuda.is_available()]
        if unavailable:
            raise SystemExit(f"error: {', '.join(unavailable)}: CUDA is not available on this machine")
        by_device(args.devices, args.repeats)
        return
    print("| actor hidden sizes | actor parameters | batch | update ms | µs per (1k params x 1k samples) |")
    print("|---|---|---|---|---|")
    grid = [((64, 64), b) for b in (1024, 2048, 4096, 8192, 16384)]
    grid += [(h, 2048) for h in ((128, 128), (256, 256), (512, 512), (1024, 1024))]
    for hidden, batch_size in grid:
        seconds, params = time_update(hidden, batch_size, args.repeats)
        unit = seconds * 1e6 / (params / 1e3 * batch_size / 1e3)
        print(
            f"| {'x'.join(map(str, hidden))} | {params:,} | {batch_size:,} | {seconds * 1e3:.1f} | {unit:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
