"""Throughput of trpo against sb3-contrib's TRPO, side by side in one invocation.

Each repeat runs A (trpo) then B (sb3-contrib) for the same number of environment steps, alternating
A B A B so that machine noise hits both alike; the ratio is the median of the per-pair ratios. Also
measured in the same invocation: the raw environment's rate (1 process, random actions), each side's
rollout/update split, and one update's time (policy + critic).

Modes:
  preset        trpo with its preset for the env (what `trpo train ENV` does) against sb3-contrib with
                RL-Zoo's entry for the env (ZOO below: the env's own hyperparameters, as RL-Zoo runs it)
  like-for-like both with RL-Zoo's entry for the env (trpo's fields mapped one to one: `zoo_config`)
  like-for-like-process (optional) the same, trpo sampling with 2 worker processes
  like-for-like-worker (optional) the same, trpo sampling with 1 worker process that collects the next
                batch while the learner fits the critic (overlap_critic_fit)
  preset-envpool (optional) the preset with sampler=envpool (EnvPool's C++ environments; envpool extra)

trpo is timed as `trpo train` runs: progress.csv, TensorBoard events and checkpoints are written to a
temporary run directory during the timed run (no final evaluation, as sb3's `learn` has none).

Environments (and trpo's worker processes) are created before the clock starts, for both libraries.

    python benchmarks/throughput.py --envs HalfCheetah-v5 CartPole-v1 --steps 20480 --repeats 3

Needs the bench extra: pip install -e ".[bench]" (checked first: without it the script says so and exits 2).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch

from _deps import require

warnings.filterwarnings("ignore")

# RL-Zoo's TRPO hyperparameters (rl-baselines3-zoo, hyperparams/trpo.yml at commit 13a3fe7), each env's
# own entry (MuJoCo v5 ids take the v4 entries). Keys not in an entry take sb3-contrib's TRPO defaults
# (trpo.zoo.SB3_TRPO_DEFAULTS); `normalize: true` means VecNormalize (observations and rewards). trpo's
# like-for-like config is what `trpo train ENV --zoo trpo.yml` reads from the same entry (trpo.config.zoo).
_ZOO_MUJOCO: dict[str, Any] = {
    "normalize": True, "n_envs": 2, "batch_size": 128, "n_steps": 1024, "gamma": 0.99, "gae_lambda": 0.95,
    "sub_sampling_factor": 1, "cg_max_steps": 25, "cg_damping": 0.1, "n_critic_updates": 20, "learning_rate": 1e-3,
}  # fmt: skip
ZOO: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "n_envs": 2, "n_steps": 512, "batch_size": 512, "cg_damping": 1e-3, "gae_lambda": 0.98, "gamma": 0.99,
        "learning_rate": 1e-3, "n_critic_updates": 20,
    },
    "Pendulum-v1": {"n_envs": 2, "n_steps": 1024, "gamma": 0.9, "n_critic_updates": 15, "use_sde": True,
                    "sde_sample_freq": 4},
    "LunarLander-v3": {
        "n_envs": 2, "n_steps": 512, "cg_damping": 0.01, "gae_lambda": 0.98, "gamma": 0.99, "learning_rate": 1e-3,
        "n_critic_updates": 15,
    },
    "Ant-v5": _ZOO_MUJOCO,
    "HalfCheetah-v5": {**_ZOO_MUJOCO, "target_kl": 0.04},
    "Hopper-v5": _ZOO_MUJOCO,
    "Walker2d-v5": _ZOO_MUJOCO,
    "Humanoid-v5": _ZOO_MUJOCO,
    "Swimmer-v5": {**_ZOO_MUJOCO, "gamma": 0.9999},
}  # fmt: skip


def zoo(env_id: str) -> dict[str, Any]:
    """The peer's complete settings for `env_id`: its RL-Zoo entry on sb3-contrib's defaults."""
    from trpo.config.zoo import SB3_TRPO_DEFAULTS

    if env_id not in ZOO:
        raise SystemExit(f"error: no RL-Zoo TRPO entry for {env_id} here; known: {', '.join(ZOO)}")
    return {**SB3_TRPO_DEFAULTS, **ZOO[env_id]}


def zoo_config(env_id: str) -> Any:
    """trpo's TRPOConfig with exactly the peer's settings (RL-Zoo's entry mapped by trpo.config.zoo)."""
    from trpo.config.schema import config_from_dict
    from trpo.config.zoo import zoo_fields

    zoo(env_id)  # the error for an env without an entry
    return config_from_dict(zoo_fields(ZOO[env_id], source=f"RL-Zoo {env_id}"))


@dataclass
class Timing:
    steps_per_s: float
    rollout_s: float
    update_s: float
    updates: int

    @property
    def rollout_share(self) -> float:
        return self.rollout_s / (self.rollout_s + self.update_s)

    @property
    def update_ms(self) -> float:
        return 1e3 * self.update_s / max(1, self.updates)


def raw_env_rate(env_id: str, steps: int) -> float:
    """Steps per second of one environment in one process with random actions."""
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % 1000])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def run_trpo(env_id: str, steps: int, mode: str) -> Timing:
    """trpo as `trpo train` runs: progress.csv, TensorBoard and checkpoints written to a run directory."""
    from trpo import TRPO
    from trpo.config.presets import preset_config

    config = preset_config(env_id)[0] if mode == "preset" else zoo_config(env_id)
    if mode == "like-for-like-process":
        config = config.replace(sampler="process", workers=2)
    if mode == "like-for-like-worker":
        config = config.replace(sampler="process", workers=1)
    if mode == "preset-envpool":
        config = preset_config(env_id)[0].replace(sampler="envpool")
    agent = TRPO(env_id, config.replace(seed=0, eval_episodes=0))
    agent.start_sampler()  # environments (and worker processes) are made before the clock starts, as sb3's
    with tempfile.TemporaryDirectory(prefix="trpo-throughput-") as run_dir:
        start = time.perf_counter()
        agent.learn(steps, run_dir=run_dir)
        wall = time.perf_counter() - start
    agent.close()
    return Timing(agent.num_steps / wall, agent.rollout_seconds, agent.update_seconds, agent.num_updates)


def run_sb3(env_id: str, steps: int) -> Timing:
    """sb3-contrib's TRPO with RL-Zoo's entry for the env, as RL-Zoo would run it (VecNormalize if `normalize`)."""
    from sb3_contrib import TRPO as SB3TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    z = zoo(env_id)
    torch.set_num_threads(DEFAULT_THREADS)  # what an sb3 user runs with
    env = make_vec_env(env_id, n_envs=z["n_envs"], seed=0)
    if z["normalize"]:
        env = VecNormalize(env, gamma=z["gamma"])
    model = SB3TRPO(
        "MlpPolicy", env, n_steps=z["n_steps"], batch_size=z["batch_size"], gamma=z["gamma"],
        gae_lambda=z["gae_lambda"], learning_rate=z["learning_rate"], cg_max_steps=z["cg_max_steps"],
        cg_damping=z["cg_damping"], n_critic_updates=z["n_critic_updates"], target_kl=z["target_kl"],
        sub_sampling_factor=z["sub_sampling_factor"], use_sde=z["use_sde"], sde_sample_freq=z["sde_sample_freq"],
        seed=0, verbose=0,
    )  # fmt: skip
    train_s = 0.0
    updates = 0
    original_train = model.train

    def timed_train() -> None:
        nonlocal train_s, updates
        start = time.perf_counter()
        original_train()
        train_s += time.perf_counter() - start
        updates += 1

    model.train = timed_train  # type: ignore[method-assign]
    start = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - start
    env.close()
    return Timing(model.num_timesteps / wall, wall - train_s, train_s, updates)


DEFAULT_THREADS = torch.get_num_threads()
# the peer's settings, sampled by 2 worker processes (1 env each), or by 1 worker process (both envs) that
# collects the next batch while the learner fits the critic (overlap_critic_fit)
# the preset with EnvPool's environments in-process (sampler=envpool, the envpool extra)
EXTRA_MODES = ["like-for-like-process", "like-for-like-worker", "preset-envpool"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5", "Hopper-v5"])
    parser.add_argument(
        "--modes", nargs="+", default=["preset", "like-for-like"], choices=["preset", "like-for-like", *EXTRA_MODES]
    )
    parser.add_argument("--steps", type=int, default=20480, help="environment steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=str, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    require(__file__, ["sb3_contrib"], env_ids=args.envs)

    results: list[dict[str, Any]] = []
    print(f"torch {torch.__version__}, default threads {DEFAULT_THREADS}, {args.steps} steps x {args.repeats} repeats")
    header = (
        "| env | mode | trpo steps/s | sb3-contrib steps/s | ratio (median of pairs) | trpo rollout share "
        "| sb3 rollout share | trpo update ms | sb3 train() ms | update ratio | raw env steps/s | trpo / raw |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for env_id in args.envs:
        raw = raw_env_rate(env_id, 20000)
        for mode in args.modes:
            ours: list[Timing] = []
            peer: list[Timing] = []
            for _ in range(args.repeats):
                ours.append(run_trpo(env_id, args.steps, mode))
                peer.append(run_sb3(env_id, args.steps))
            ratio = statistics.median(a.steps_per_s / b.steps_per_s for a, b in zip(ours, peer, strict=True))
            update_ratio = statistics.median(b.update_ms / a.update_ms for a, b in zip(ours, peer, strict=True))
            ours_sps = statistics.median(t.steps_per_s for t in ours)
            row = {
                "env": env_id, "mode": mode, "trpo_steps_per_s": ours_sps,
                "sb3_steps_per_s": statistics.median(t.steps_per_s for t in peer), "ratio": ratio,
                "trpo_rollout_share": statistics.median(t.rollout_share for t in ours),
                "sb3_rollout_share": statistics.median(t.rollout_share for t in peer),
                "trpo_update_ms": statistics.median(t.update_ms for t in ours),
                "sb3_train_ms": statistics.median(t.update_ms for t in peer), "update_ratio": update_ratio,
                "raw_env_steps_per_s": raw, "trpo_over_raw": ours_sps / raw,
            }  # fmt: skip
            results.append(row)
            print(
                f"| {env_id} | {mode} | {row['trpo_steps_per_s']:,.0f} | {row['sb3_steps_per_s']:,.0f} | "
                f"{ratio:.2f}x | {row['trpo_rollout_share']:.0%} | {row['sb3_rollout_share']:.0%} | "
                f"{row['trpo_update_ms']:.0f} | {row['sb3_train_ms']:.0f} | {update_ratio:.2f}x | {raw:,.0f} | "
                f"{row['trpo_over_raw']:.0%} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
