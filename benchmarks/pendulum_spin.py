"""What a Pendulum-v1 policy does on its failed seeds: does it balance, or spin the pendulum round?

For each finished run directory OUT/Pendulum-v1/seed-S of the returns suite (`benchmarks/returns.py`), it
replays the final policy deterministically (the frozen observation normalisation, raw rewards) on
`--episodes` starts seeded 50000, 50001, ... (the same starts for every seed, apart from those of the
suite's evaluation) and prints per seed: the mean and worst return, how many episodes are not upright
(cos θ > 0.95 for under half of the second 100 steps), and how many full turns the pendulum makes per episode
(|θ(end) − θ(start)| / 2π on the unwrapped angle; a swing-up then balance makes under one).

    python benchmarks/pendulum_spin.py /tmp/s4/pdK --episodes 20
"""

from __future__ import annotations

import argparse
import pathlib

import gymnasium as gym
import numpy as np

from trpo import load


def replay(run_dir: pathlib.Path, episodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns, fraction of the second half spent upright, and turns, one entry per episode."""
    agent = load(run_dir)
    env = gym.make("Pendulum-v1")
    returns, upright, turns = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=50_000 + episode)
        total, angles, done = 0.0, [], False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.predict(obs, deterministic=True))
            total += float(reward)
            angles.append(float(np.arctan2(obs[1], obs[0])))
            done = terminated or truncated
        theta = np.unwrap(np.asarray(angles))
        half = len(theta) // 2
        returns.append(total)
        upright.append(float(np.mean(np.cos(theta[half:]) > 0.95)))
        turns.append(abs(theta[-1] - theta[0]) / (2 * np.pi))
    env.close()
    return np.asarray(returns), np.asarray(upright), np.asarray(turns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path, help="the returns suite's --out directory")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    seeds = sorted(args.out.glob("Pendulum-v1/seed-*"), key=lambda p: int(p.name.split("-")[1]))
    if not seeds:
        raise SystemExit(f"error: no Pendulum-v1/seed-* run under {args.out}")
    print("| seed | mean return | worst | episodes not upright | turns per episode (mean, max) |")
    print("|---|---|---|---|---|")
    for run_dir in seeds:
        returns, upright, turns = replay(run_dir, args.episodes)
        print(
            f"| {run_dir.name.split('-')[1]} | {returns.mean():.1f} | {returns.min():.0f} | "
            f"{int(np.sum(upright < 0.5))}/{args.episodes} | {turns.mean():.2f}, {turns.max():.1f} |"
        )


if __name__ == "__main__":
    main()
