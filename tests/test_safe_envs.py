"""The constrained example environments: Gymnasium's checker, the cost on hand-placed states, scripted policies."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from trpo.examples.safe_envs import CartPoleBandEnv, PointHazardEnv, hazard_cost

POINT = "trpo.examples.safe_envs:PointHazard-v0"
BAND = "trpo.examples.safe_envs:CartPoleBand-v0"


@pytest.mark.parametrize(("env_id", "cls", "limit"), [(POINT, PointHazardEnv, 200), (BAND, CartPoleBandEnv, 500)])
def test_registered_ids_make_the_environments_with_their_time_limits(env_id: str, cls: type, limit: int) -> None:
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, cls)
    assert env.spec is not None and env.spec.max_episode_steps == limit
    assert isinstance(gym.make(env_id.split(":")[1]).unwrapped, cls)  # registered by the import


def test_point_hazard_passes_the_env_checker_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(POINT).unwrapped)


def test_cartpole_band_passes_the_env_checker() -> None:
    """CartPole's own observation space has infinite bounds, which the checker warns about: nothing else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(BAND).unwrapped)
    assert all("infinity" in str(w.message) for w in caught), [str(w.message) for w in caught]


# ---------------------------------------------------------------- PointHazard


@pytest.mark.parametrize(
    ("start", "cost"),
    [
        ((0.0, 0.0), 1.0),
        ((0.34, 0.0), 1.0),
        ((0.0, -0.35), 1.0),  # on the edge counts as inside
        ((0.24, 0.24), 1.0),
        ((0.36, 0.0), 0.0),
        ((0.25, 0.25), 0.0),  # 0.354 from the centre
        ((-1.0, 0.0), 0.0),
        ((1.9, -1.9), 0.0),
    ],
)
def test_point_hazard_costs_one_exactly_inside_the_hazard(start: tuple[float, float], cost: float) -> None:
    env = gym.make(POINT)
    env.reset(seed=0, options={"start": start})
    *_, info = env.step(np.zeros(2, dtype=np.float32))  # a zero velocity: the point stays where it was placed
    assert info["cost"] == cost
    assert hazard_cost(np.array(start), (0.0, 0.0), 0.35) == cost


def test_point_hazard_refuses_a_start_outside_the_arena() -> None:
    env = gym.make(POINT)
    with pytest.raises(ValueError, match="start"):
        env.reset(options={"start": (3.0, 0.0)})


def test_point_hazard_clips_the_velocity_to_unit_norm_and_the_arena() -> None:
    env = gym.make(POINT)
    obs, _ = env.reset(seed=0, options={"start": (-1.0, 0.0)})
    obs, *_ = env.step(np.array([10.0, 10.0], dtype=np.float32))
    np.testing.assert_allclose(obs[:2], [-1.0 + 0.05 / np.sqrt(2), 0.05 / np.sqrt(2)], rtol=1e-6)
    env.reset(options={"start": (-2.0, -2.0)})
    obs, *_ = env.step(np.array([-1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(obs[:2], [-2.0, -2.0])


def test_point_hazard_resets_deterministically_near_the_start() -> None:
    env = gym.make(POINT)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    assert np.all(np.abs(first[:2] - np.array([-1.0, 0.0])) <= 0.1)


def run(env: gym.Env, policy: str, seed: int) -> tuple[float, float, bool, int]:
    """Episode return, total cost, whether the goal was reached, and the length, of a scripted policy:
    'straight' heads for the goal; 'detour' first heads for (0, 0.6), above the hazard; 'still' does nothing."""
    obs, _ = env.reset(seed=seed)
    goal, waypoint, passed = np.array([1.0, 0.0]), np.array([0.0, 0.6]), policy != "detour"
    total, cost, steps = 0.0, 0.0, 0
    while True:
        position = obs[:2].astype(np.float64)
        passed = passed or bool(np.linalg.norm(waypoint - position) < 0.05)
        target = goal if passed else waypoint
        action = np.zeros(2) if policy == "still" else (target - position) / np.linalg.norm(target - position)
        obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
        total, cost, steps = total + float(reward), cost + info["cost"], steps + 1
        if terminated or truncated:
            return total, cost, bool(terminated), steps


@pytest.mark.parametrize("seed", range(5))
def test_the_straight_line_pays_cost_for_reward_a_detour_avoids_the_hazard_and_still_arrives(seed: int) -> None:
    env = gym.make(POINT)
    straight_return, straight_cost, straight_arrived, _ = run(env, "straight", seed)
    detour_return, detour_cost, detour_arrived, _ = run(env, "detour", seed)
    assert straight_arrived and detour_arrived
    assert straight_cost >= 10 and detour_cost == 0
    assert straight_return > detour_return  # an unconstrained policy profits from crossing the hazard


def test_standing_still_is_truncated_at_the_time_limit_without_cost() -> None:
    total, cost, arrived, steps = run(gym.make(POINT), "still", 0)
    assert (arrived, steps, cost) == (False, 200, 0.0)
    assert total == pytest.approx(-0.05 * 200)


# ---------------------------------------------------------------- CartPoleBand


@pytest.mark.parametrize(("x", "cost"), [(0.0, 0.0), (0.49, 0.0), (-0.49, 0.0), (0.5, 1.0), (-0.6, 1.0), (2.0, 1.0)])
def test_cartpole_band_costs_one_exactly_outside_the_band(x: float, cost: float) -> None:
    env = gym.make(BAND)
    env.reset(seed=0)
    env.unwrapped.state = np.array([x, 0.0, 0.0, 0.0])  # at rest: the Euler step leaves x where it is
    _, reward, terminated, _, info = env.step(0)
    assert (info["cost"], reward, terminated) == (cost, 1.0, False)


def test_cartpole_band_is_cartpole_in_everything_but_the_cost() -> None:
    band, plain = gym.make(BAND), gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    obs_band, _ = band.reset(seed=4)
    obs_plain, _ = plain.reset(seed=4)
    np.testing.assert_array_equal(obs_band, obs_plain)
    for _ in range(100):
        action = int(rng.integers(2))
        *band_step, info = band.step(action)
        *plain_step, _ = plain.step(action)
        np.testing.assert_array_equal(band_step[0], plain_step[0])
        assert band_step[1:] == plain_step[1:]
        assert info["cost"] == (0.0 if abs(band_step[0][0]) < 0.5 else 1.0)
        if band_step[2] or band_step[3]:
            break
