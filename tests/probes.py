"""Probe environments that each isolate one piece of the learner (after A. Jones' RL debugging probes)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class ConstantReward(gym.Env):
    """One step, observation 0, reward 1: the value of the start state must be 1."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(1, np.float32), 1.0, True, False, {}


class ObservationDependentReward(gym.Env):
    """One step; observation is +1 or -1 at random; reward +1 for the action that matches its sign."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.sign = int(self.np_random.integers(2))
        return np.array([2 * self.sign - 1], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(1, np.float32), 1.0 if int(action) == self.sign else -1.0, True, False, {}


class ContinuousTarget(gym.Env):
    """One step; reward -(a - obs)^2 for a Box action: a Gaussian policy must learn a = obs."""

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Box(-2, 2, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.target = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self.target.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = -float(np.sum((np.asarray(action) - self.target) ** 2))
        return np.zeros(1, np.float32), reward, True, False, {}


class DelayedReward(gym.Env):
    """Two steps. The first action decides the reward, which arrives only after the second step.

    Credit assignment: the policy must learn to take action 1 at the first step (obs 0), although the
    reward follows the second action (obs +1 or -1, any action).
    """

    observation_space = spaces.Box(-1, 1, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([1.0, 0.0], np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.t == 0:
            self.t = 1
            self.first = int(action)
            return np.array([0.0, 2.0 * self.first - 1.0], np.float32), 0.0, False, False, {}
        return np.zeros(2, np.float32), 1.0 if self.first == 1 else 0.0, True, False, {}


class Endless(gym.Env):
    """Reward 1 every step and a constant observation; episodes end after `limit` steps.

    With `terminate=False` the end is a time-limit truncation: bootstrapping makes the value of the
    (only) state 1 / (1 - gamma). With `terminate=True` the end is a real termination and the value is
    an average of the truncated geometric sums, well below that.
    """

    observation_space = spaces.Box(-1, 1, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, limit: int = 5, terminate: bool = False) -> None:
        self.limit = limit
        self.terminate = terminate

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        done = self.t >= self.limit
        return np.zeros(1, np.float32), 1.0, done and self.terminate, done and not self.terminate, {}
