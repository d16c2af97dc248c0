"""Returns suite: environments x seeds at a fixed budget, aggregated over seeds.

Every run is `trpo train ENV --seed S --total-steps N --run-dir OUT/ENV/seed-S` in its own process
(`--workers` at a time). Per run it reads the final deterministic evaluation (summary.json: 10
episodes, raw rewards) and the mean of the last 100 training episodes (the last row of progress.csv).
Per environment it writes the mean ± std over seeds to OUT/results.md and OUT/results.csv, and a
learning-curve PNG (`trpo plot`'s: mean over seeds with a ± std band, x in environment steps) to OUT/ENV.png.

    python benchmarks/returns.py --envs HalfCheetah-v5 Hopper-v5 --seeds 0 1 2 3 4 --steps 1000000 --workers 2
    python benchmarks/returns.py --envs CartPole-v1 --seeds 0 1 --steps 100000 -- --max-kl 0.01

With `--reuse`, a run directory that already holds a finished run of the identical `trpo train`
arguments (recorded in returns-command.txt) is read instead of trained again: runs are deterministic
given the seed and the flags, so growing a 2-seed screen to 5 seeds only trains the new seeds.

Arguments after `--` are passed to every `trpo train` (config flags, e.g. an ablation).
MuJoCo and Box2D environments need the bench extra: pip install -e ".[bench]" (checked first).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from _deps import require
from trpo.tools.parallel import run_all, train_command
from trpo.tools.plot import STEPS, Run, load_run, plot_curves

TRAIN_RETURN = "rollout/ep_return_mean"


@dataclass(frozen=True)
class Job:
    """One `trpo train` of the suite and where it writes."""

    env_id: str
    seed: int
    run_dir: Path
    command: list[str]

    @property
    def record(self) -> Path:
        """The trpo arguments this run directory was produced with."""
        return self.run_dir / "returns-command.txt"

    @property
    def arguments(self) -> str:
        return shlex.join(self.command[3:])  # after `python -m trpo`

    def finished(self) -> bool:
        """A finished run of the identical command is in run_dir (runs are deterministic)."""
        done = (self.run_dir / "summary.json").exists() and self.record.exists()
        return done and self.record.read_text() == self.arguments


def job(env_id: str, seed: int, steps: int, out: Path, extra: list[str]) -> Job:
    run_dir = out / env_id / f"seed-{seed}"
    flags = ["--seed", str(seed), "--total-steps", str(steps), "--eval-episodes", "10", *extra]
    return Job(env_id, seed, run_dir, train_command(env_id, run_dir, flags))


def train_all(jobs: list[Job], workers: int, reuse: bool) -> None:
    """Train every job (`workers` at a time) except, with `reuse`, those already finished; every run is
    waited for before a failure is raised, so one failing seed loses no other."""
    todo = [j for j in jobs if not (reuse and j.finished())]
    failed = []
    for j, result in zip(todo, run_all([j.command for j in todo], workers), strict=True):
        if result.returncode == 0:
            j.record.write_text(j.arguments)
        else:
            failed.append(f"{shlex.join(j.command)} failed:\n{result.stderr}")
    if failed:
        raise RuntimeError("\n".join(failed))


def final_and_last100(run: Run) -> tuple[float, float, int]:
    """Final deterministic evaluation (summary.json), mean of the last 100 training episodes and steps."""
    summary = json.loads((run.path / "summary.json").read_text())
    return float(summary["mean_return"]), float(run.columns[TRAIN_RETURN][-1]), int(run.columns[STEPS][-1])


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


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
    require(__file__, env_ids=args.envs)

    jobs = [job(env_id, seed, args.steps, args.out, extra) for env_id in args.envs for seed in args.seeds]
    train_all(jobs, args.workers, args.reuse)

    import gymnasium
    import matplotlib

    matplotlib.use("Agg")
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
            env_jobs = [j for j in jobs if j.env_id == env_id]
            env_runs = [load_run(j.run_dir) for j in env_jobs]
            finals, last100s = [], []
            for j, run in zip(env_jobs, env_runs, strict=True):
                final, last100, steps = final_and_last100(run)
                writer.writerow([env_id, j.seed, steps, final, last100, j.run_dir])
                finals.append(final)
                last100s.append(last100)
            lines.append(
                f"| {env_id} | {args.steps:,} | {len(env_jobs)} | {mean_std(finals)} | "
                f"{mean_std(last100s)} | {', '.join(f'{v:.0f}' for v in finals)} |"
            )
            plot_curves(env_runs, TRAIN_RETURN, args.out / f"{env_id}.png")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
