"""Learning checks with thresholds. CartPole runs in CI (about 10 s); the longer ones are marked slow."""

from __future__ import annotations

import pytest

from conftest import require
from trpo import TRPO, evaluate
from trpo.config.presets import preset_config


def train_preset(env_id: str, seed: int = 0) -> TRPO:
    config, _ = preset_config(env_id)
    agent = TRPO(env_id, config, seed=seed).learn()
    agent.close()
    return agent


def test_cartpole_reaches_475_in_100k_steps() -> None:
    """The preset reaches 500 on each of 10 seeds (BENCHMARKS.md). Floating point differs between machines
    enough to move a single seed's run, so the threshold is what every seed reaches, not this seed's score."""
    agent = train_preset("CartPole-v1")
    assert agent.num_steps <= 100_352
    assert evaluate(agent, episodes=10)["mean_return"] >= 475
    # A healthy run raises no health alarm; a solved CartPole's policy may become near-deterministic, which
    # entropy_collapse reports (seed 8 of the 10, long after reaching 500).
    assert {a["name"] for a in agent.alarms} <= {"entropy_collapse"}


def test_pendulum_preset_learns() -> None:
    """A quick check that the continuous-control preset loads and learns (issue: CI keeps one).

    The thresholds sit between what learning gives and what no learning gives. The preset's 20 seeds
    (BENCHMARKS.md) end with deterministic returns of -84 to -194 (-136 to -175 over 100 starts per seed),
    while their stochastic training return only rises from about -1200 to -740 ... -880 (seeds 0-9): the
    exploration noise grows (policy std about 4 for torques in +-2) and what the preset learns is the mean
    action. A random or untrained policy scores about -1200 to -1500, and an update that never moves the
    policy stays there. Floating point moves single seeds across machines, so the evaluation is held to -400
    and the training return to a rise of 200."""
    stats: list[dict[str, float]] = []
    config, _ = preset_config("Pendulum-v1")
    agent = TRPO("Pendulum-v1", config, seed=0).learn(callback=lambda _agent, row: stats.append(dict(row)))
    agent.close()
    assert stats[-1]["rollout/ep_return_mean"] >= stats[0]["rollout/ep_return_mean"] + 200
    assert evaluate(agent, episodes=10)["mean_return"] >= -400
    assert agent.alarms == []


def test_mujoco_preset_learns() -> None:
    """The MuJoCo preset path (issue: CI keeps a quick preset check): InvertedPendulum-v5 at 40k steps."""
    require("mujoco", "mujoco")
    config, name = preset_config("InvertedPendulum-v5")
    assert name == "InvertedPendulum-v5" and config.total_steps == 40_000
    agent = train_preset("InvertedPendulum-v5")
    assert evaluate(agent, episodes=10)["mean_return"] >= 950


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_cartpole_other_seeds(seed: int) -> None:
    agent = train_preset("CartPole-v1", seed=seed)
    assert evaluate(agent, episodes=10)["mean_return"] >= 475
