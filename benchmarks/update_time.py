"""Time of one policy + critic update for TRPO, NPG and PPO on the same batches, interleaved in one
process (so that machine load affects all three alike): median over `--repeats` batches.

    python benchmarks/update_time.py --env CartPole-v1 --repeats 10
    python benchmarks/update_time.py --env HalfCheetah-v5 --config shared.yaml

Each algorithm uses its preset for the environment (plus `--config`); every algorithm updates from
its own copy of the same initial networks on the same batch, collected by TRPO's rollout settings.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

from _deps import require
from trpo import make_agent
from trpo.config.presets import preset_config
from trpo.config.schema import load_yaml_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--config", type=Path, default=None, help="YAML applied to every algorithm's preset")
    args = parser.parse_args()
    require(__file__, env_ids=[args.env])
    agents = {}
    for algo in ("trpo", "npg", "ppo"):
        config, _ = preset_config(args.env, algo=algo)
        if args.config is not None:
            config = load_yaml_config(args.config, base=config).replace(algo=algo)
        agents[algo] = make_agent(args.env, config, seed=0)
    collector = agents["trpo"].start_sampler()
    times: dict[str, list[float]] = {algo: [] for algo in agents}
    for _ in range(args.repeats):
        batch = collector.collect(agents["trpo"].config.gamma, agents["trpo"].config.gae_lambda)
        for algo, agent in agents.items():
            mine = copy.copy(batch) if agent.config.batch_size == batch.obs.shape[0] else None
            if mine is None:  # a different batch size: its own rollouts
                mine = agent.start_sampler().collect(agent.config.gamma, agent.config.gae_lambda)
            start = time.perf_counter()
            agent.update(mine)
            times[algo].append(time.perf_counter() - start)
    print(f"{args.env}: median update time over {args.repeats} batches (ms)")
    for algo, values in times.items():
        batch_size = agents[algo].config.batch_size
        print(f"  {algo:5s} {1000 * statistics.median(values):8.1f}  (batch {batch_size}, "
              f"{1e6 * statistics.median(values) / batch_size:.1f} us per sample)")  # fmt: skip


if __name__ == "__main__":
    main()
