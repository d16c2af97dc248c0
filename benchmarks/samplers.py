"""Samplers side by side: steps/s of sync, async, process x2, Ray x1 and Ray x2 workers, and learning parity.

Throughput: one agent per sampler (the same total n_envs x n_steps), all alive at once on one local
Ray instance; each repeat runs every sampler for the same number of updates in turn (A B C D A B C D
...), so machine noise hits all alike, and the table shows medians over repeats. Ray start-up and the
first (warm-up) update are not timed. Besides end-to-end steps/s it splits each update into the
collection (learner's view, including Ray's transfer and the learner's critic values and GAE), the
slowest worker's own sampling time, and the TRPO update.

Parity: `trpo train ENV --sampler S` for a few seeds at an equal step budget; the final deterministic
return from summary.json.

    python benchmarks/samplers.py throughput --env HalfCheetah-v5 --updates 10 --repeats 5
    python benchmarks/samplers.py throughput --env HalfCheetah-v5 --updates 10 --repeats 5 --worker-niceness 0
    python benchmarks/samplers.py parity --env HalfCheetah-v5 --steps 200000 --seeds 0 1 2
    python benchmarks/samplers.py parity --env Hopper-v5 --steps 200000 --seeds 0 1 2 --samplers sync "process x2"
    python benchmarks/samplers.py learner --env HalfCheetah-v5 --copies 1 8 32

Needs the ray extra: pip install -e ".[mujoco,ray]".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _deps import require

warnings.filterwarnings("ignore")

SAMPLERS: dict[str, dict[str, Any]] = {
    "sync": {"sampler": "sync"},
    "async": {"sampler": "async"},
    "process x2": {"sampler": "process", "workers": 2},
    "ray x1": {"sampler": "ray", "workers": 1},
    "ray x2": {"sampler": "ray", "workers": 2},
}


def timed_updates(agent: Any, updates: int) -> dict[str, float]:
    """Run `updates` more updates; wall time, and the per-update rollout/update/worker times summed."""
    from trpo.sampling.workers import RemoteSampler

    sampler = agent.start_sampler()
    totals = {"rollout_s": 0.0, "update_s": 0.0, "worker_s": 0.0}
    rollout_s, update_s = agent.rollout_seconds, agent.update_seconds
    start = time.perf_counter()
    for _ in range(updates):
        agent.learn(agent.config.batch_size)  # one more update
        if isinstance(sampler, RemoteSampler):
            totals["worker_s"] += max(sampler.seconds)
    totals["wall_s"] = time.perf_counter() - start
    totals["rollout_s"] = agent.rollout_seconds - rollout_s
    totals["update_s"] = agent.update_seconds - update_s
    return totals


def throughput(args: argparse.Namespace) -> None:
    import ray
    import torch

    from trpo import TRPO, TRPOConfig

    torch.set_num_threads(1)
    if args.worker_niceness is not None:  # Ray starts workers at nice 15 unless told otherwise
        os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # noqa: SIM112 (Ray's spelling)
    # Logical CPUs: enough to hold every sampler's workers at once; only one sampler runs at a time.
    ray.init(num_cpus=3, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    base = TRPOConfig(n_envs=args.n_envs, n_steps=args.n_steps, seed=0)
    agents = {name: TRPO(args.env, base.replace(**changes)) for name, changes in SAMPLERS.items()}
    for agent in agents.values():
        agent.learn(agent.config.batch_size)  # warm-up: starts workers / subprocesses
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in agents}
    for _ in range(args.repeats):
        for name, agent in agents.items():
            runs[name].append(timed_updates(agent, args.updates))
    for agent in agents.values():
        agent.close()
    ray.shutdown()

    batch = base.batch_size
    steps = batch * args.updates
    print(f"\n{args.env}, {base.n_envs} envs x {base.n_steps} steps per update ({batch:,}), {args.updates} updates per")
    print(f"repeat, {args.repeats} repeats, medians. Command: python benchmarks/samplers.py {' '.join(sys.argv[1:])}\n")
    print("| sampler | steps/s | × sync | collect ms/update | slowest worker ms | update ms | sampling steps/s |")
    print("|---|---|---|---|---|---|---|")
    sync_rate = statistics.median(steps / r["wall_s"] for r in runs["sync"])
    results = {}
    for name, rs in runs.items():
        rate = statistics.median(steps / r["wall_s"] for r in rs)
        collect = statistics.median(1e3 * r["rollout_s"] / args.updates for r in rs)
        worker = statistics.median(1e3 * r["worker_s"] / args.updates for r in rs)
        update = statistics.median(1e3 * r["update_s"] / args.updates for r in rs)
        sampling = statistics.median(steps / r["rollout_s"] for r in rs)
        results[name] = {"steps_per_s": rate, "collect_ms": collect, "worker_ms": worker, "update_ms": update}
        worker_text = f"{worker:.0f}" if worker else "–"
        print(
            f"| {name} | {rate:,.0f} | {rate / sync_rate:.2f} | {collect:.0f} | {worker_text} | {update:.0f} "
            f"| {sampling:,.0f} |"
        )
    ratio = [a["wall_s"] / b["wall_s"] for a, b in zip(runs["ray x1"], runs["ray x2"], strict=True)]
    print(f"\nray x2 / ray x1 steps/s: median of per-repeat ratios {statistics.median(ratio):.2f}")
    print(json.dumps(results))


def parity(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in args.samplers:
                flags = [f"--{k.replace('_', '-')}={v}" for k, v in SAMPLERS[name].items()]
                run_dir = Path(tmp) / f"{name.replace(' ', '')}-{seed}"
                command = [
                    sys.executable, "-m", "trpo", "train", args.env, "--seed", str(seed),
                    "--total-steps", str(args.steps), "--quiet", "--checkpoint-every", "0",
                    "--run-dir", str(run_dir), *flags,
                ]  # fmt: skip
                subprocess.run(command, check=True, capture_output=True, text=True)
                summary = json.loads((run_dir / "summary.json").read_text())
                rows.append((name, seed, summary["mean_return"], summary["steps_per_s"]))
                print(f"{name} seed {seed}: return {summary['mean_return']:.0f}", file=sys.stderr)
    print(f"\n{args.env}, {args.steps:,} steps, final deterministic return (10 episodes). Command: "
          f"python benchmarks/samplers.py {' '.join(sys.argv[1:])}\n")  # fmt: skip
    print("| sampler | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean ± std |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for name in args.samplers:
        values = [r[2] for r in rows if r[0] == name]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cells = " | ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {cells} | {statistics.mean(values):.0f} ± {spread:.0f} |")


def learner(args: argparse.Namespace) -> None:
    """The learner's TRPO update time as the batch grows (a HalfCheetah batch repeated), median of repeats."""
    import torch

    from trpo import TRPO, TRPOConfig
    from trpo.sampling.rollout import Batch

    agent = TRPO(args.env, TRPOConfig(n_envs=16, n_steps=128, seed=0))
    one = agent.start_sampler().collect(0.99, 0.95)
    agent.close()
    print(f"\n{args.env}: TRPO update time (defaults) vs batch size, median of {args.repeats}. Command: "
          f"python benchmarks/samplers.py {' '.join(sys.argv[1:])}\n")  # fmt: skip
    print("| batch | update ms | µs per transition |")
    print("|---|---|---|")
    for copies in args.copies:
        batch = Batch(
            *(torch.cat([getattr(one, f)] * copies) for f in ("obs", "actions", "advantages", "returns", "values"))
        )
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            agent.update(batch)
            times.append(time.perf_counter() - start)
        ms = 1e3 * statistics.median(times)
        print(f"| {batch.obs.shape[0]:,} | {ms:.0f} | {1e3 * ms / batch.obs.shape[0]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--env", default="HalfCheetah-v5")
    t.add_argument("--n-envs", type=int, default=16)
    t.add_argument("--n-steps", type=int, default=128)
    t.add_argument("--updates", type=int, default=10)
    t.add_argument("--repeats", type=int, default=5)
    t.add_argument("--worker-niceness", type=int, default=None, help="nice level of Ray workers (Ray's default: 15)")
    p = sub.add_parser("parity")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=["sync", "ray x2"])
    u = sub.add_parser("learner")
    u.add_argument("--env", default="HalfCheetah-v5")
    u.add_argument("--copies", type=int, nargs="+", default=[1, 8, 32])
    u.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray = args.part == "throughput" or any(name.startswith("ray") for name in getattr(args, "samplers", []))
    require(__file__, ["ray"] if ray else [], env_ids=[args.env])
    {"throughput": throughput, "parity": parity, "learner": learner}[args.part](args)


if __name__ == "__main__":
    main()
