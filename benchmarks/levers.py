"""Steps per second of whole `learn()` runs for one setting changed at a time (same seed and steps).

    python benchmarks/levers.py --env HalfCheetah-v5 --steps 30720 --repeats 3

Each variant runs `repeats` times, interleaved (A B C A B C ...); the table shows the median.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from _deps import require
from trpo import TRPO, TRPOConfig

warnings.filterwarnings("ignore")

VARIANTS: dict[str, dict[str, object]] = {
    "defaults (sync, 1 thread)": {},
    "sampler: async": {"sampler": "async"},
    "torch_threads: 2": {"torch_threads": 2},
    "fvp_subsample: 1.0": {"fvp_subsample": 1.0},
    "2 envs x 1024 steps": {"n_envs": 2, "n_steps": 1024},
    "2 envs x 1024, async": {"n_envs": 2, "n_steps": 1024, "sampler": "async"},
}


def run(env_id: str, steps: int, changes: dict[str, object]) -> tuple[float, float, float]:
    agent = TRPO(env_id, TRPOConfig(checkpoint_every=0).replace(**changes), seed=0)
    start = time.perf_counter()
    agent.learn(steps)
    wall = time.perf_counter() - start
    agent.close()
    return agent.num_steps / wall, agent.rollout_seconds, agent.update_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=30720)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require(__file__, env_ids=[args.env])
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, changes in VARIANTS.items():
            results[name].append(run(args.env, args.steps, changes))
    print(f"{args.env}, {args.steps} steps, median of {args.repeats}\n")
    print("| variant | steps/s | rollout s | update s |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        sps = statistics.median(r[0] for r in runs)
        rollout = statistics.median(r[1] for r in runs)
        update = statistics.median(r[2] for r in runs)
        print(f"| {name} | {sps:,.0f} | {rollout:.2f} | {update:.2f} |")


if __name__ == "__main__":
    main()
