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

With `--library sb3-contrib` every run is sb3-contrib's TRPO instead, with RL-Zoo's own entry for the
environment (`throughput.ZOO`: rl-baselines3-zoo's hyperparams/trpo.yml, on sb3-contrib's defaults;
VecNormalize where the entry says `normalize`), one torch thread, in its own process
(`python benchmarks/returns.py sb3-run ENV ...`). It is evaluated as `trpo train` evaluates: 10
(`--eval-episodes`) deterministic episodes on a fresh environment seeded with the run's evaluation seeds
(trpo.run.evaluation.episode_seeds), raw rewards, observations normalised with the frozen training
statistics where the entry normalises.
It writes the same summary.json and a progress.csv with the columns the suite reads (time/steps and
rollout/ep_return_mean: the mean of the last 100 training episodes, raw rewards, after every rollout),
so the same table, CSV and curves come out. Arguments after `--` are refused (the entry is the config).

    python benchmarks/returns.py --library sb3-contrib --envs Pendulum-v1 --seeds 0 1 2 3 4 --steps 100000 --workers 1
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _deps import require
from trpo.tools.parallel import run_all, train_command
from trpo.tools.plot import STEPS, Run, load_run, plot_curves

TRAIN_RETURN = "rollout/ep_return_mean"
SB3 = "sb3-contrib"
LIBRARIES = ("trpo", SB3)
EVAL_EPISODES = 10


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
        if self.command[1:3] == ["-m", "trpo"]:
            return shlex.join(self.command[3:])  # after `python -m trpo`
        return shlex.join(self.command[2:])  # after `python benchmarks/returns.py`: `sb3-run ... sb3-contrib==V`

    def finished(self) -> bool:
        """A finished run of the identical command is in run_dir (runs are deterministic)."""
        done = (self.run_dir / "summary.json").exists() and self.record.exists()
        return done and self.record.read_text() == self.arguments


def job(
    env_id: str,
    seed: int,
    steps: int,
    out: Path,
    extra: list[str],
    library: str = "trpo",
    episodes: int = EVAL_EPISODES,
) -> Job:
    run_dir = out / env_id / f"seed-{seed}"
    if library == SB3:
        from importlib.metadata import version

        command = [sys.executable, str(Path(__file__).resolve()), "sb3-run", env_id, "--seed", str(seed)]
        command += ["--steps", str(steps), "--run-dir", str(run_dir), "--eval-episodes", str(episodes)]
        command += ["--version", version("sb3-contrib")]
        return Job(env_id, seed, run_dir, command)
    flags = ["--seed", str(seed), "--total-steps", str(steps), "--eval-episodes", str(episodes), *extra]
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


def sb3_run(env_id: str, seed: int, steps: int, run_dir: Path, episodes: int = EVAL_EPISODES) -> None:
    """One sb3-contrib TRPO run with RL-Zoo's entry for `env_id`, written as `trpo train` writes a run:
    progress.csv (time/steps, rollout/ep_return_mean after every rollout), summary.json with the final
    deterministic evaluation (trpo's protocol: fresh env, episodes seeded by trpo's episode_seeds, raw rewards)."""
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import TRPO as SB3TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from throughput import ZOO, zoo
    from trpo.run.evaluation import episode_seeds

    z = zoo(env_id)
    torch.set_num_threads(1)  # as each `trpo train` of the suite
    run_dir.mkdir(parents=True, exist_ok=True)
    env = make_vec_env(env_id, n_envs=z["n_envs"], seed=seed)
    if z["normalize"]:
        env = VecNormalize(env, gamma=z["gamma"])
    model = SB3TRPO(
        "MlpPolicy", env, n_steps=z["n_steps"], batch_size=z["batch_size"], gamma=z["gamma"],
        gae_lambda=z["gae_lambda"], learning_rate=z["learning_rate"], cg_max_steps=z["cg_max_steps"],
        cg_damping=z["cg_damping"], n_critic_updates=z["n_critic_updates"], target_kl=z["target_kl"],
        sub_sampling_factor=z["sub_sampling_factor"], use_sde=z["use_sde"], sde_sample_freq=z["sde_sample_freq"],
        line_search_shrinking_factor=z["line_search_shrinking_factor"], line_search_max_iter=z["line_search_max_iter"],
        normalize_advantage=z["normalize_advantage"], seed=seed, verbose=0,
    )  # fmt: skip
    rows: list[tuple[int, float]] = []

    class Progress(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:  # the Monitor's episodes: raw rewards, the last 100 (sb3's window)
            returns = [info["r"] for info in self.model.ep_info_buffer]
            rows.append((self.model.num_timesteps, float(np.mean(returns)) if returns else math.nan))

    start = time.perf_counter()
    model.learn(steps, callback=Progress())
    wall = time.perf_counter() - start
    with open(run_dir / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([STEPS, TRAIN_RETURN])
        writer.writerows(rows)

    eval_env = gym.make(env_id)
    returns = []
    for episode_seed in episode_seeds(seed, episodes):
        obs, _ = eval_env.reset(seed=episode_seed)
        total, done = 0.0, False
        while not done:
            policy_obs = env.normalize_obs(obs) if isinstance(env, VecNormalize) else obs  # frozen statistics
            action, _ = model.predict(policy_obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    eval_env.close()
    env.close()
    summary: dict[str, Any] = {
        "env_id": env_id, "algo": "sb3-contrib trpo", "seed": seed, "total_steps": model.num_timesteps,
        "wall_time_s": wall, "steps_per_s": model.num_timesteps / wall,
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)), "eval_episodes": episodes,
        "returns": returns, "hyperparameters": {"rl_zoo_entry": ZOO[env_id], "resolved": z},
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def sb3_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="returns.py sb3-run", description=sb3_run.__doc__)
    parser.add_argument("env_id")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES)
    parser.add_argument("--version", help="sb3-contrib's version (recorded, so --reuse retrains after an upgrade)")
    args = parser.parse_args(argv)
    sb3_run(args.env_id, args.seed, args.steps, args.run_dir, args.eval_episodes)


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
    if argv[:1] == ["sb3-run"]:
        sb3_main(argv[1:])
        return
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
        "--eval-episodes",
        type=int,
        default=EVAL_EPISODES,
        help="episodes of each run's final deterministic evaluation (the run's own evaluation seeds; default 10, the "
        "targets' protocol; 100 tells a policy's expected return from its start states' luck)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a finished run whose directory was produced by the identical trpo command "
        "(runs are deterministic given seed and flags) instead of training it again",
    )
    parser.add_argument(
        "--library",
        choices=LIBRARIES,
        default="trpo",
        help="sb3-contrib: sb3-contrib's TRPO with RL-Zoo's entry for each env, evaluated the same way",
    )
    args = parser.parse_args(argv)
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be >= 1 (got {args.eval_episodes})")
    if "--eval-episodes" in extra:
        parser.error("give --eval-episodes before `--` (the suite passes it to every run)")
    if args.library == SB3:
        from throughput import ZOO

        if extra:
            parser.error(f"--library {SB3} runs RL-Zoo's entry as it is: no flags after `--` ({shlex.join(extra)})")
        unknown = [e for e in args.envs if e not in ZOO]
        if unknown:
            parser.error(
                f"no RL-Zoo TRPO entry for {', '.join(unknown)} (benchmarks/throughput.py ZOO has {', '.join(ZOO)})"
            )
    require(__file__, ["sb3_contrib"] if args.library == SB3 else [], env_ids=args.envs)

    jobs = [
        job(e, seed, args.steps, args.out, extra, args.library, args.eval_episodes)
        for e in args.envs
        for seed in args.seeds
    ]
    train_all(jobs, args.workers, args.reuse)

    import gymnasium
    import matplotlib

    matplotlib.use("Agg")
    command = shlex.join(["python", "benchmarks/returns.py", *sys.argv[1:]])
    lines = [
        f"`{command}` (gymnasium {gymnasium.__version__})",
        "",
        f"| env | budget | seeds | final deterministic return ({args.eval_episodes} episodes) "
        "| last 100 training episodes | per seed (final) |",
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
