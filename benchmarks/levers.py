"""Steps per second of whole `learn()` runs for one setting changed at a time (same seed and steps).

    python benchmarks/levers.py --env HalfCheetah-v5 --steps 30720 --repeats 3
    python benchmarks/levers.py --env CartPole-v1 --preset --steps 30720 --repeats 3 --variants base "process, 1 worker"

Each variant runs `repeats` times, interleaved (A B C A B C ...); the table shows the median. The base
is TRPOConfig's defaults, or with `--preset` the env's preset (what `trpo train ENV` runs). Worker
processes are started before the clock starts.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from _deps import require
from trpo import TRPO, TRPOConfig
from trpo.config.presets import preset_config

warnings.filterwarnings("ignore")

VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "sampler: async": {"sampler": "async"},
    "torch_threads: 2": {"torch_threads": 2},
    "fvp_subsample: 1.0": {"fvp_subsample": 1.0},
    "2 envs x 1024 steps": {"n_envs": 2, "n_steps": 1024},
    "2 envs x 1024, async": {"n_envs": 2, "n_steps": 1024, "sampler": "async"},
    "sync": {"sampler": "sync"},
    "process, 1 worker": {"sampler": "process", "workers": 1},
    "process, 1 worker, no overlap": {"sampler": "process", "workers": 1, "overlap_critic_fit": False},
    "process, 2 workers": {"sampler": "process", "workers": 2},
    "process, 2 workers, no overlap": {"sampler": "process", "workers": 2, "overlap_critic_fit": False},
    "envpool": {"sampler": "envpool"},
    "envpool, 1 thread": {"sampler": "envpool", "envpool_threads": 1},
}
DEFAULT_VARIANTS = [
    "base", "sampler: async", "torch_threads: 2", "fvp_subsample: 1.0", "2 envs x 1024 steps", "2 envs x 1024, async",
]  # fmt: skip


def run(env_id: str, base: TRPOConfig, steps: int, changes: dict[str, object]) -> tuple[float, float, float]:
    agent = TRPO(env_id, base.replace(checkpoint_every=0, **changes), seed=0)
    agent.start_sampler()
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
    parser.add_argument("--preset", action="store_true", help="start from the env's preset, not the defaults")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    args = parser.parse_args()
    require(__file__, env_ids=[args.env])
    base = preset_config(args.env)[0] if args.preset else TRPOConfig()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in args.variants}
    for _ in range(args.repeats):
        for name in args.variants:
            results[name].append(run(args.env, base, args.steps, VARIANTS[name]))
    print(f"{args.env} ({'preset' if args.preset else 'defaults'}), {args.steps} steps, median of {args.repeats}\n")
    print("| variant | steps/s | rollout s | update s |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        sps = statistics.median(r[0] for r in runs)
        rollout = statistics.median(r[1] for r in runs)
        update = statistics.median(r[2] for r in runs)
        print(f"| {name} | {sps:,.0f} | {rollout:.2f} | {update:.2f} |")


if __name__ == "__main__":
    main()
