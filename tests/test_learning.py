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

    The thresholds sit between what learning gives and what no learning gives. The preset's 10 seeds end
    their training at -181 to -289 (mean of the last 100 episodes, stochastic policy; BENCHMARKS.md), a
    random or untrained policy scores about -1200 to -1500, and an update that never moves the policy stays
    there. The deterministic evaluation is less robust across machines (floating point moves single seeds,
    and a seed whose stochastic policy swings up can have a deterministic one that does not: -826 for the
    previous preset on one machine), so it is held only to beating the untrained level."""
    stats: list[dict[str, float]] = []
    config, _ = preset_config("Pendulum-v1")
    agent = TRPO("Pendulum-v1", config, seed=0).learn(callback=lambda _agent, row: stats.append(dict(row)))
    agent.close()
    assert stats[-1]["rollout/ep_return_mean"] >= -400
    assert evaluate(agent, episodes=10)["mean_return"] >= -1000
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
