"""Small constrained Gymnasium environments: each step reports a cost in `info["cost"]` (Safety-Gymnasium's convention).

Importing this module registers them, so that both of these work:

    gymnasium.make("trpo.examples.safe_envs:PointHazard-v0")
    gymnasium.make("trpo.examples.safe_envs:CartPoleBand-v0")

Both are built so that the constraint binds: a policy that ignores the cost has something to gain (or nothing to
lose) by violating it. A constrained run bounds the expected episode cost J_C(π) = E[Σ_t cost_t] ≤ d.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from numpy.typing import NDArray

__all__ = ["CartPoleBandEnv", "PointHazardEnv", "cart_outside_band", "hazard_cost"]

Obs = NDArray[np.float32]


def hazard_cost(position: NDArray[np.floating[Any]], center: tuple[float, float], radius: float) -> float:
    """cost = 1 if ‖position − center‖ ≤ radius else 0."""
    return 1.0 if math.hypot(float(position[0]) - center[0], float(position[1]) - center[1]) <= radius else 0.0


class PointHazardEnv(gym.Env[Obs, Obs]):
    """A point robot in the plane must reach a goal; a circular hazard sits on the straight path to it.

    - State: the position p ∈ [−2, 2]². Start: (−1, 0) + U(−0.1, 0.1)² (or `reset(options={"start": (x, y)})`).
    - Action: a velocity a ∈ [−1, 1]², clipped to the box and then to norm ≤ 1: p ← clip(p + dt·a), dt = 0.05.
    - Observation (float32): (p, goal − p, hazard − p).
    - Reward: 10 (φ(p_{t−1}) − φ(p_t)) − 0.05, plus 10 on reaching the goal (‖p − goal‖ ≤ 0.1), which ends the
      episode; φ(p) = max(‖p − goal‖ − 0.1, 0) is the distance left to the goal's edge. The progress term sums to
      the same on every path that reaches the goal, so the per-step penalty is what makes the shortest path
      (through the hazard) strictly the best, for undiscounted returns too (discounting favours it anyway).
    - Cost: `info["cost"]` = 1 while ‖p − hazard‖ ≤ 0.35 (after the move), else 0. The goal is at (1, 0), the hazard
      at (0, 0): the straight line costs about 14 per episode, a detour around the hazard nothing.
    - Registered with a 200-step TimeLimit.
    """

    dt = 0.05
    arena = 2.0
    goal = (1.0, 0.0)
    goal_radius = 0.1
    goal_bonus = 10.0
    progress_scale = 10.0
    step_penalty = 0.05
    hazard = (0.0, 0.0)
    hazard_radius = 0.35
    start = (-1.0, 0.0)
    start_noise = 0.1
    resume_fields = ("_position",)
    """The state a checkpoint captures (`trpo.sampling.env_state`), so that a resumed run continues its episodes."""

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"PointHazard has no render modes, got render_mode={render_mode!r}")
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        bound = 2.0 * self.arena
        self.observation_space = spaces.Box(-bound, bound, shape=(6,), dtype=np.float32)
        self._position = np.array(self.start, dtype=np.float64)

    def _observation(self) -> Obs:
        p = self._position
        goal, hazard = np.asarray(self.goal), np.asarray(self.hazard)
        return np.concatenate([p, goal - p, hazard - p]).astype(np.float32)

    def _distance_to_goal(self) -> float:
        return math.hypot(self._position[0] - self.goal[0], self._position[1] - self.goal[1])

    def _potential(self) -> float:
        """φ(p) = max(‖p − goal‖ − goal_radius, 0)."""
        return max(self._distance_to_goal() - self.goal_radius, 0.0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and "start" in options:
            start = np.asarray(options["start"], dtype=np.float64)
            if start.shape != (2,) or not np.all(np.abs(start) <= self.arena):
                raise ValueError(f"options['start'] must be a point in [-{self.arena}, {self.arena}]², got {start}")
            self._position = start.copy()
        else:
            noise = self.np_random.uniform(-self.start_noise, self.start_noise, size=2)
            self._position = np.asarray(self.start, dtype=np.float64) + noise
        return self._observation(), {"distance_to_goal": self._distance_to_goal()}

    def step(self, action: Obs) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        velocity = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        speed = float(np.linalg.norm(velocity))
        if speed > 1.0:
            velocity = velocity / speed
        before = self._potential()
        self._position = np.clip(self._position + self.dt * velocity, -self.arena, self.arena)
        after = self._distance_to_goal()
        reached = after <= self.goal_radius
        progress = before - self._potential()
        reward = self.progress_scale * progress - self.step_penalty + (self.goal_bonus if reached else 0.0)
        cost = hazard_cost(self._position, self.hazard, self.hazard_radius)
        info = {"cost": cost, "distance_to_goal": after, "goal_reached": reached}
        return self._observation(), float(reward), reached, False, info


class CartPoleBandEnv(CartPoleEnv):
    """CartPole (the reward, dynamics and termination of CartPole-v1) with a cost for leaving a band around the centre.

    `info["cost"]` = 1 when the cart is outside |x| < 0.5 after the step, else 0. The reward does not care where the
    cart is (it ends the episode only beyond |x| > 2.4), so an unconstrained policy drifts freely; keeping the
    cart in the band is what the constraint asks. Registered with a 500-step TimeLimit, like CartPole-v1.
    """

    band = 0.5

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        assert self.state is not None
        info = {**info, "cost": 0.0 if abs(float(self.state[0])) < self.band else 1.0}
        return observation, float(reward), terminated, truncated, info


def cart_outside_band(obs: Any, action: Any, reward: Any, next_obs: Any, info: dict[str, Any]) -> float:
    """A cost function in Python for plain CartPole-v1 (`trpo.sampling.costs.CostFunction`): 1 when the cart ends the
    step outside |x| < 0.5, as CartPoleBand-v0 reports it itself."""
    return 0.0 if abs(float(next_obs[0])) < CartPoleBandEnv.band else 1.0


def _register() -> None:
    """Register the environments once (module reloads keep the first registration)."""
    for env_id, entry_point, steps in (
        ("PointHazard-v0", f"{__name__}:PointHazardEnv", 200),
        ("CartPoleBand-v0", f"{__name__}:CartPoleBandEnv", 500),
    ):
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)


_register()
