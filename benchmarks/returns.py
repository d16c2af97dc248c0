"""Returns suite: environments x seeds at a fixed budget, aggregated over seeds.

Every run is `trpo train ENV --seed S --total-steps N --run-dir OUT/ENV/seed-S` in its own process
(`--workers` at a time). Per run it reads the final deterministic evaluation (summary.json: 10
episodes, raw rewards) and the mean of the last 100 training episodes (the last row of progress.csv).
Per environment it writes the mean ± std over seeds to OUT/results.md and OUT/results.csv, and a
learning-curve PNG (mean over seeds with a min-max band, x in environment steps) to OUT/ENV.png.

    python benchmarks/returns.py --envs HalfCheetah-v5 Hopper-v5 --seeds 0 1 2 3 4 --steps 1000000 --workers 2
    python benchmarks/returns.py --envs CartPole-v1 --seeds 0 1 --steps 100000 -- --max-kl 0.01

With `--reuse`, a run directory that already holds a finished run of the identical `trpo train`
arguments (recorded in returns-command.txt) is read instead of trained again: runs are deterministic
given the seed and the flags, so growing a 2-seed screen to 5 seeds only trains the new seeds.

Arguments after `--` are passed to every `trpo train` (config flags, e.g. an ablation).
Needs matplotlib (the bench extra).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trpo.parallel import train_command


@dataclass
class Run:
    env_id: str
    seed: int
    run_dir: Path
    final_return: float
    last100_return: float
    steps: np.ndarray
    curve: np.ndarray


def train(env_id: str, seed: int, steps: int, out: Path, extra: list[str], reuse: bool = False) -> Path:
    """Run one `trpo train` (or, with `reuse`, keep a finished run of the identical command)."""
    run_dir = out / env_id / f"seed-{seed}"
    flags = ["--seed", str(seed), "--total-steps", str(steps), "--eval-episodes", "10", *extra]
    command = train_command(env_id, run_dir, flags)
    args = shlex.join(command[3:])  # the trpo arguments, after `python -m trpo.cli`
    record = run_dir / "returns-command.txt"  # the trpo arguments this run directory was produced with
    if reuse and (run_dir / "summary.json").exists() and record.exists() and record.read_text() == args:
        return run_dir
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr}")
    record.write_text(args)
    return run_dir


def read_run(env_id: str, seed: int, run_dir: Path) -> Run:
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["time/steps"]) for r in rows])
    curve = np.array([float(r["rollout/ep_return_mean"]) for r in rows])
    return Run(env_id, seed, run_dir, float(summary["mean_return"]), float(curve[-1]), steps, curve)


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def plot(env_id: str, runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(max(r.steps[0] for r in runs), min(r.steps[-1] for r in runs), 200)
    # before a run's first finished episode its curve is NaN: start it at its first value
    filled = [np.nan_to_num(r.curve, nan=r.curve[~np.isnan(r.curve)][0]) for r in runs]
    curves = np.stack([np.interp(grid, r.steps, c) for r, c in zip(runs, filled, strict=True)])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(grid, curves.mean(0), label=f"trpo, mean of {len(runs)} seeds")
    ax.fill_between(grid, curves.min(0), curves.max(0), alpha=0.25, label="min-max over seeds")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training return (mean of last 100 episodes)")
    ax.set_title(env_id)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, required=True, help="environment steps per run")
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--out", type=Path, default=Path("runs/returns"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a finished run whose directory was produced by the identical trpo command "
        "(runs are deterministic given seed and flags) instead of training it again",
    )
    args = parser.parse_args(argv)

    jobs = [(env_id, seed) for env_id in args.envs for seed in args.seeds]
    with ThreadPoolExecutor(args.workers) as pool:
        dirs = list(pool.map(lambda job: train(job[0], job[1], args.steps, args.out, extra, args.reuse), jobs))
    runs = [read_run(env_id, seed, d) for (env_id, seed), d in zip(jobs, dirs, strict=True)]

    import gymnasium

    command = shlex.join(["python", "benchmarks/returns.py", *sys.argv[1:]])
    lines = [
        f"`{command}` (gymnasium {gymnasium.__version__})",
        "",
        "| env | budget | seeds | final deterministic return (10 episodes) | last 100 training episodes "
        "| per seed (final) |",
        "|---|---|---|---|---|---|",
    ]
    with open(args.out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env", "seed", "steps", "final_return", "last100_return", "run_dir"])
        for env_id in args.envs:
            env_runs = [r for r in runs if r.env_id == env_id]
            for r in env_runs:
                writer.writerow([env_id, r.seed, int(r.steps[-1]), r.final_return, r.last100_return, r.run_dir])
            finals = [r.final_return for r in env_runs]
            lines.append(
                f"| {env_id} | {args.steps:,} | {len(env_runs)} | {mean_std(finals)} | "
                f"{mean_std([r.last100_return for r in env_runs])} | {', '.join(f'{v:.0f}' for v in finals)} |"
            )
            plot(env_id, env_runs, args.out / f"{env_id}.png")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
