"""Speed of the CNN policy on CPU with 84 x 84 x 4 frames, rollout and update apart, and the memory one
stored transition takes.

The environment is a stand-in that returns random (4, 84, 84) uint8 frames (the shape and dtype of
ALE/Pong-v5 through AtariPreprocessing and a 4-frame stack) at no cost, so the figures are the policy's:
the Nature CNN's forward passes in the rollout, and the update's passes (surrogate gradient, Fisher-vector
products on the preset's subsample, line search, critic epochs, diagnostics). The config is the
ALE/Pong-v5 preset's (8 x 128 steps per update) unless flags change it.

    python benchmarks/cnn_speed.py --updates 3 --torch-threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trpo import TRPO
from trpo.config.presets import preset_config

warnings.filterwarnings("ignore")


class RandomFrames(gym.Env[np.ndarray, np.int64]):
    """(4, 84, 84) uint8 random frames, 6 actions, reward 0, episodes of 1000 steps."""

    observation_space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = spaces.Discrete(6)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        frame = self.np_random.integers(0, 256, (4, 84, 84), dtype=np.uint8)
        return frame, 0.0, False, self.t >= 1000, {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    config, _ = preset_config("ALE/Pong-v5")
    config = config.replace(torch_threads=args.torch_threads)
    agent = TRPO(RandomFrames, config, seed=0)
    collector = agent.start_sampler()
    rollouts, updates = [], []
    batch = None
    for _ in range(args.updates + 1):  # the first update warms up (torch.func's first linearisation)
        start = time.perf_counter()
        batch = collector.collect(config.gamma, config.gae_lambda)
        middle = time.perf_counter()
        agent.update(batch)
        rollouts.append(middle - start)
        updates.append(time.perf_counter() - middle)
    assert batch is not None
    rollout, update = statistics.median(rollouts[1:]), statistics.median(updates[1:])
    n = config.batch_size
    stored = batch.obs.element_size() * batch.obs.shape[1]
    print(
        f"{n} steps per update ({config.n_envs} x {config.n_steps}), torch_threads={args.torch_threads}: "
        f"rollout {rollout:.2f} s ({n / rollout:,.0f} steps/s), update {update:.2f} s ({n / update:,.0f} steps/s), "
        f"{n / (rollout + update):,.1f} steps/s overall"
    )
    print(
        f"stored observation per transition: {stored:,} bytes ({batch.obs.dtype}; float32 would take {4 * stored:,}); "
        f"actor {sum(p.numel() for p in agent.actor.parameters()):,} and critic "
        f"{sum(p.numel() for p in agent.critic.parameters()):,} parameters"
    )


if __name__ == "__main__":
    main()
