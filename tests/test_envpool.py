"""`sampler=envpool`: EnvPool's environments behind the in-process sampler, checked against Gymnasium's."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from conftest import require
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main
from trpo.errors import ConfigError
from trpo.sampling.env_spec import EnvSpec
from trpo.sampling.envpool_envs import EnvPoolVectorEnv

require("envpool", "envpool")


def pool(env_id: str, n: int, seed: int = 0) -> tuple[EnvPoolVectorEnv, gym.Env]:
    env = gym.make(env_id)
    return EnvPoolVectorEnv(EnvSpec(env_id), n, (env.observation_space, env.action_space), seed=seed), env


def test_cartpole_dynamics_equal_gymnasiums_step_for_step() -> None:
    """From EnvPool's start states, Gymnasium's CartPole-v1 (its state set to the same numbers) gives the same
    observations, rewards and terminations for the same actions."""
    envs, env = pool("CartPole-v1", 4)
    obs, _ = envs.reset(seed=3)
    rng = np.random.default_rng(0)
    compared = 0
    for _ in range(60):
        actions = rng.integers(0, 2, size=4)
        expected = []
        for i in range(4):
            env.reset()
            env.unwrapped.state = obs[i].astype(np.float64)  # type: ignore[attr-defined]
            expected.append(env.step(int(actions[i])))
        obs_next, rewards, terminated, truncated, info = envs.step(actions)
        for i, (o, r, term, _, _) in enumerate(expected):
            reached = info["final_obs"][i] if terminated[i] or truncated[i] else obs_next[i]
            np.testing.assert_allclose(reached, o, rtol=1e-5, atol=1e-6)
            assert rewards[i] == r and bool(terminated[i]) == term
            compared += 1
        obs = obs_next
    assert compared == 240


def test_halfcheetah_dynamics_equal_gymnasiums() -> None:
    """MuJoCo HalfCheetah-v5 (mujoco extra): Gymnasium's env set to EnvPool's start state follows it for
    50 steps of random actions (same observations and rewards up to float noise)."""
    require("mujoco", "mujoco")
    envs, env = pool("HalfCheetah-v5", 2, seed=1)
    obs, _ = envs.reset()
    env.reset(seed=0)
    raw = env.unwrapped
    qpos = np.concatenate([[0.0], obs[0, :8]])
    raw.set_state(qpos, obs[0, 8:].astype(np.float64))  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    for _ in range(50):
        action = rng.uniform(-1, 1, size=(2, 6)).astype(np.float32)
        o, r, *_ = env.step(action[0])
        obs, rewards, *_ = envs.step(action)
        np.testing.assert_allclose(obs[0], o, rtol=1e-4, atol=1e-4)
        assert abs(rewards[0] - r) < 1e-3


def test_an_ended_episode_restarts_in_the_same_step_with_its_last_observation_in_info() -> None:
    envs, _ = pool("CartPole-v1", 3)
    envs.reset()
    for _ in range(200):  # always pushing left ends every episode within ~10 steps
        obs, _, terminated, _, info = envs.step(np.zeros(3, dtype=np.int64))
        if terminated.any():
            break
    ended = np.flatnonzero(terminated)
    assert ended.size and "final_obs" in info
    for i in ended:
        assert abs(info["final_obs"][i][2]) > 0.2 or abs(info["final_obs"][i][0]) > 2.4  # the terminal state
        assert np.all(np.abs(obs[i]) <= 0.05)  # a first observation of the next episode
    assert obs.dtype == np.float32


def test_training_and_evaluation_from_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "CartPole-v1", "--sampler", "envpool", "--total-steps", "4096", "--quiet", "--run-dir", str(run)]
    assert main(args) == 0
    assert "sampler: envpool" in (run / "config.yaml").read_text()
    assert main(["eval", str(run), "--episodes", "2"]) == 0  # on Gymnasium's environment


def test_what_envpool_cannot_run_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="EnvPool has no environment 'NoSuchEnv-v0'"):
        pool_spec = EnvSpec("NoSuchEnv-v0")
        EnvPoolVectorEnv(pool_spec, 2, (gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2)))
    with pytest.raises(ConfigError, match="not 'mymod:MyEnv-v0'"):
        EnvPoolVectorEnv(EnvSpec("mymod:MyEnv-v0"), 2, (gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2)))
    with pytest.raises(ConfigError, match="sampler=envpool"):
        TRPO(lambda: gym.make("CartPole-v1"), TRPOConfig(sampler="envpool", n_envs=2), seed=0).learn(256)
