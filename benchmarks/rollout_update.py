"""Median time of one rollout (`collect()`) and one `update()` on HalfCheetah-v5, 2048 steps per update.

python benchmarks/rollout_update.py --n-envs 2       # the peer's update: 20 critic epochs of 128, CG 25
python benchmarks/rollout_update.py --n-envs 16
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from _deps import require
from trpo import TRPO, TRPOConfig

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--updates", type=int, default=6)
    args = parser.parse_args()
    require(__file__, env_ids=["HalfCheetah-v5"])
    config = TRPOConfig(
        n_envs=args.n_envs, n_steps=2048 // args.n_envs, vf_epochs=20, vf_minibatch_size=128, cg_iters=25,
        fvp_subsample=1.0, max_kl=0.01,
    )  # fmt: skip
    agent = TRPO("HalfCheetah-v5", config, seed=0)
    collector = agent.start_sampler()
    rollouts, updates = [], []
    for _ in range(args.updates):
        start = time.perf_counter()
        batch = collector.collect(config.gamma, config.gae_lambda)
        middle = time.perf_counter()
        agent.update(batch)
        rollouts.append(middle - start)
        updates.append(time.perf_counter() - middle)
    rollout, update = statistics.median(rollouts[1:]), statistics.median(updates[1:])
    per_step = rollout / config.n_steps * 1e6
    print(
        f"n_envs={args.n_envs}: rollout {rollout * 1e3:.0f} ms ({per_step:.0f} us per vector step), "
        f"update {update * 1e3:.0f} ms, {2048 / (rollout + update):,.0f} steps/s"
    )


if __name__ == "__main__":
    main()
