"""Health metrics and alarms: known answers for the pure functions, and each alarm triggered on purpose
by a crafted environment, network or configuration (and none on a healthy run, see test_learning.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from probes import ConstantReward
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main
from trpo.run.health import ALARMS, HealthMonitor, dead_unit_fractions, exploration_ratio

TRPO_ALARMS = [a.name for a in ALARMS if "trpo" in a.algos]
"""The alarms that watch TRPO (stuck_infeasible watches the constrained algorithms only)."""

FAST = {"n_envs": 2, "n_steps": 128, "hidden_sizes": (16, 16), "eval_episodes": 0}


def fired(agent: TRPO) -> list[str]:
    return [a["name"] for a in agent.alarms]


# ---------------------------------------------------------------- pure functions with known answers


def test_dead_unit_fractions_counts_units_negative_on_every_state() -> None:
    layer = nn.Linear(2, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [-1.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.0, -1.0, -5.0]))
    net = nn.Sequential(layer, nn.ReLU(), nn.Linear(4, 1))
    x = torch.tensor([[1.0, -1.0], [2.0, -3.0]])
    # unit 0 is positive on both states; unit 1 is negative on both; unit 2 is -1 everywhere;
    # unit 3 is -6 and -7: three of four are dead
    assert dead_unit_fractions(net, x) == [0.75]
    assert dead_unit_fractions(nn.Sequential(nn.Linear(2, 3), nn.Tanh()), x) == []  # tanh is not counted


def test_exploration_ratio_is_the_std_ratio_for_gaussians_and_entropy_ratio_otherwise() -> None:
    d, sigma0, sigma = 3, 1.0, 0.25
    h = lambda s: d * (0.5 * math.log(2 * math.pi * math.e) + math.log(s))  # noqa: E731
    assert exploration_ratio(h(sigma), h(sigma0), d, gaussian=True) == pytest.approx(0.25)
    assert exploration_ratio(0.1, 0.4, 1, gaussian=False) == pytest.approx(0.25)


def healthy_row(**changes: float) -> dict[str, float]:
    row = {
        "train/entropy": 0.6, "train/entropy_change": -0.01, "train/line_search_success": 1.0,
        "train/kl_max": 0.05, "train/cg_residual": 1e-3, "train/explained_variance": 0.5, "train/adv_std": 1.0,
        "train/return_mean": 10.0, "train/return_std": 3.0,
    }  # fmt: skip
    return {**row, **changes}


def test_monitor_fires_after_the_streak_once_and_counts_updates_held() -> None:
    monitor = HealthMonitor(TRPOConfig(alarm_ev_updates=3), gaussian=False, action_dims=1)
    lines = []
    for update in range(1, 7):
        scalars, new = monitor.observe(healthy_row(**{"train/explained_variance": -0.2}), update, 100 * update)
        lines += [a.name for a in new]
        assert scalars["alarms/critic_not_learning"] == float(update >= 3)
        assert set(TRPO_ALARMS) == {k.split("/")[1] for k in scalars if k.startswith("alarms/")}
    assert lines == ["critic_not_learning"]  # reported once
    (summary,) = monitor.summary()
    assert (summary["update"], summary["step"], summary["updates_held"]) == (3, 300, 4)
    restored = HealthMonitor(TRPOConfig(alarm_ev_updates=3), gaussian=False, action_dims=1)
    restored.load_state(json.loads(json.dumps(monitor.state())))
    assert restored.state() == monitor.state()


def test_negative_explained_variance_of_near_constant_returns_is_not_an_alarm() -> None:
    """A solved CartPole: returns ~100 +- 0.01, so explained variance is noise around 0."""
    monitor = HealthMonitor(TRPOConfig(alarm_ev_updates=2), gaussian=False, action_dims=1)
    row = healthy_row(**{"train/explained_variance": -5.0, "train/return_mean": 100.0, "train/return_std": 0.01})
    assert not any(monitor.observe(row, update, update)[1] for update in range(1, 10))


def test_a_healthy_row_fires_nothing() -> None:
    monitor = HealthMonitor(TRPOConfig(), gaussian=False, action_dims=1)
    for update in range(1, 30):
        scalars, new = monitor.observe(healthy_row(), update, update)
        assert new == [] and not any(v for k, v in scalars.items() if k.startswith("alarms/"))


# ---------------------------------------------------------------- crafted environments


class Outlier(gym.Env):
    """Gaussian observations, one in 1024 scaled by 1000; reward 1 for the action matching obs[0]'s sign."""

    observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.t = 0

    def _obs(self) -> np.ndarray:
        self.t += 1
        self.x = self.np_random.normal(size=3).astype(np.float32)
        return self.x * (1000.0 if self.t % 1024 == 0 else 1.0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = 1.0 if int(action) == int(self.x[0] > 0) else 0.0
        return self._obs(), reward, False, self.t % 100 == 0, {}


class NoiseReward(gym.Env):
    """Random observations and rewards that nothing can predict."""

    observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.np_random.normal(size=4).astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs = self.np_random.normal(size=4).astype(np.float32)
        return obs, float(self.np_random.normal() * 10), bool(self.np_random.random() < 0.05), False, {}


class Bandit(ConstantReward):
    """One step, a constant observation, reward 1 for action 0: the best policy is deterministic."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(1, np.float32), float(int(action) == 0), True, False, {}


class ZeroReward(Bandit):
    """Reward 0 whatever happens."""

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(1, np.float32), 0.0, True, False, {}


def test_kl_spike_fires_on_a_rare_extreme_observation() -> None:
    """Unnormalised ReLU policy: the one outlier state moves ~1000x more than the mean KL allows."""
    config = TRPOConfig(n_envs=1, n_steps=1024, normalize_obs=False, activation="relu", max_kl=0.01, eval_episodes=0)
    agent = TRPO(Outlier, config, seed=0).learn(1024)
    assert fired(agent) == ["kl_spike"]


def test_kl_spike_measures_against_each_updates_own_delta() -> None:
    """Under max_kl_schedule=linear the limit is alarm_kl_spike times the update's delta (train/max_kl)."""
    spike = next(alarm for alarm in ALARMS if alarm.name == "kl_spike")
    config = TRPOConfig(max_kl=0.02, alarm_kl_spike=500.0)
    row = {"train/line_search_success": 1.0, "train/kl_max": 5.0}  # 500 x 0.01: within 500 x 0.02
    assert not spike.holds(row, config)
    assert spike.holds({**row, "train/max_kl": 0.005}, config)  # above 500 x 0.005


def test_cg_stall_fires_when_cg_cannot_converge() -> None:
    """One CG iteration without damping leaves most of the residual; the default 10 iterations do not."""
    config = TRPOConfig(**FAST, cg_iters=1, cg_damping=0.0, alarm_cg_residual=0.2, alarm_cg_updates=3)
    assert "cg_stall" in fired(TRPO("CartPole-v1", config, seed=0).learn(256 * 5))
    healthy = config.replace(cg_iters=10, cg_damping=0.1)
    assert "cg_stall" not in fired(TRPO("CartPole-v1", healthy, seed=0).learn(256 * 5))


def test_entropy_collapse_fires_when_one_action_wins() -> None:
    config = TRPOConfig(**FAST, max_kl=0.2)
    agent = TRPO(Bandit, config, seed=0).learn(256 * 40)
    assert "entropy_collapse" in fired(agent)
    assert agent.predict(np.zeros(1, np.float32)) == 0


def test_critic_not_learning_fires_on_unpredictable_returns() -> None:
    config = TRPOConfig(**FAST, vf_epochs=20, vf_minibatch_size=32, alarm_ev_updates=4)
    assert "critic_not_learning" in fired(TRPO(NoiseReward, config, seed=0).learn(256 * 8))


def test_dead_units_fire_for_a_relu_network_with_dead_first_layer() -> None:
    agent = TRPO("CartPole-v1", TRPOConfig(**FAST, activation="relu"), seed=0)
    with torch.no_grad():
        agent.actor.features[0].bias.fill_(-1e3)  # every first-layer unit negative on every state
    agent.learn(256)
    assert fired(agent) == ["dead_units"]


def test_zero_rewards_give_degenerate_advantages_and_a_failing_line_search() -> None:
    agent = TRPO(ZeroReward, TRPOConfig(**FAST, alarm_line_search_updates=3), seed=0)
    with torch.no_grad():  # V = 0 exactly, so every advantage is exactly 0
        agent.critic.net[-1].weight.zero_()
        agent.critic.net[-1].bias.zero_()
    agent.learn(256 * 4)
    assert fired(agent) == ["degenerate_advantages", "line_search_failing"]
    assert [a["update"] for a in agent.alarms] == [1, 3]


def test_alarm_reaches_console_csv_and_summary_once(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    code = main([
        "train", "CartPole-v1", "--run-dir", str(run_dir), "--total-steps", "1024", "--n-envs", "2",
        "--n-steps", "128", "--eval-episodes", "0", "--quiet", "--cg-iters", "1", "--cg-damping", "0",
        "--alarm-cg-residual", "0.01", "--alarm-cg-updates", "1",
    ])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("alarm cg_stall (update 1") == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [a["name"] for a in summary["alarms"]] == ["cg_stall"]
    assert summary["alarms"][0]["fix"]
    header = (run_dir / "progress.csv").read_text().splitlines()[0].split(",")
    assert {f"alarms/{name}" for name in TRPO_ALARMS} == {k for k in header if k.startswith("alarms/")}


def test_fired_alarms_survive_save_and_load(tmp_path: Any) -> None:
    agent = TRPO("CartPole-v1", TRPOConfig(**FAST, activation="relu"), seed=0)
    with torch.no_grad():
        agent.actor.features[0].bias.fill_(-1e3)
    agent.learn(256)
    agent.save(tmp_path / "model")
    assert TRPO.load(tmp_path / "model").alarms == agent.alarms == agent.health.summary()
