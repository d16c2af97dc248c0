"""Each probe isolates one piece: value learning, policy learning, credit assignment, truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes import ConstantReward, ContinuousTarget, DelayedReward, Endless, ObservationDependentReward
from trpo import TRPO, TRPOConfig

FAST = TRPOConfig(n_envs=4, n_steps=64, normalize_obs=False, normalize_reward=False, vf_lr=3e-3, eval_episodes=0)


def value(agent: TRPO, obs: list[float]) -> float:
    with torch.no_grad():
        return float(agent.critic(torch.tensor([obs], dtype=torch.float32)))


def test_constant_reward_value_learns_it() -> None:
    agent = TRPO(ConstantReward, FAST, seed=0).learn(5_000)
    assert value(agent, [0.0]) == pytest.approx(1.0, abs=0.05)


def test_observation_dependent_reward_policy_learns_it() -> None:
    agent = TRPO(ObservationDependentReward, FAST.replace(max_kl=0.05), seed=0).learn(10_000)
    assert agent.predict(np.array([1.0], np.float32)) == 1
    assert agent.predict(np.array([-1.0], np.float32)) == 0
    assert value(agent, [1.0]) == pytest.approx(1.0, abs=0.2)


def test_continuous_action_policy_learns_target() -> None:
    agent = TRPO(ContinuousTarget, FAST.replace(max_kl=0.05), seed=0).learn(20_000)
    obs = np.linspace(-0.9, 0.9, 7, dtype=np.float32).reshape(-1, 1)
    assert np.abs(agent.predict(obs) - obs).max() < 0.15


def test_two_step_credit_assignment() -> None:
    agent = TRPO(DelayedReward, FAST.replace(max_kl=0.05, gamma=0.9), seed=0).learn(10_000)
    assert agent.predict(np.array([1.0, 0.0], np.float32)) == 1
    assert value(agent, [1.0, 0.0]) == pytest.approx(0.9, abs=0.1)  # gamma * 1, discounted once
    assert value(agent, [0.0, 1.0]) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(("terminate", "expected"), [(False, 10.0), (True, 2.63)])
def test_truncation_bootstraps_and_termination_does_not(terminate: bool, expected: float) -> None:
    # gamma = 0.9. Truncated: V = 1 / (1 - 0.9) = 10. Terminated after 5 steps: the state is visited
    # at each of the 5 positions equally often, so V = mean_k (1 - 0.9^k) / 0.1 over k = 1..5
    # = (1 + 1.9 + 2.71 + 3.439 + 4.0951) / 5 = 2.63.
    config = FAST.replace(gamma=0.9, gae_lambda=0.95, vf_epochs=20)
    agent = TRPO(lambda: Endless(limit=5, terminate=terminate), config, seed=0).learn(15_000)
    assert value(agent, [0.0]) == pytest.approx(expected, rel=0.1)
