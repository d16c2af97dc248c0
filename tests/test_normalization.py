"""Running statistics: batch merges equal the statistics of the concatenated data."""

from __future__ import annotations

import numpy as np

from trpo.core.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_equals_numpy_over_all_batches() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(5, 3, size=(n, 4)) for n in (1, 7, 100, 3)]
    rms = RunningMeanStd((4,))
    for b in batches:
        rms.update(b)
    data = np.concatenate(batches)
    assert np.allclose(rms.mean, data.mean(0)) and np.allclose(rms.var, data.var(0)) and rms.count == len(data)


def test_observation_normalizer_clips_and_is_identity_when_disabled() -> None:
    norm = ObservationNormalizer((2,), enabled=True, clip=3.0)
    norm.update(np.array([[0.0, 0.0], [2.0, 2.0]]))
    out = norm(np.array([[1.0, 100.0]]))
    assert out.dtype == np.float32 and np.allclose(out, [[0.0, 3.0]])
    off = ObservationNormalizer((2,), enabled=False, clip=3.0)
    assert np.array_equal(off(np.array([[1.0, 100.0]])), np.array([[1.0, 100.0]], np.float32))


def test_reward_scaler_on_a_rollout_equals_per_step_updates() -> None:
    """Scaling a whole rollout at once gives what updating the statistics every step gives."""
    rng = np.random.default_rng(0)
    t_len, n_envs, gamma = 50, 3, 0.99
    scaler = RewardScaler(n_envs, gamma, enabled=True, clip=10.0)
    rms, returns = RunningMeanStd(()), np.zeros(n_envs)
    for _ in range(3):  # several rollouts: statistics and returns carry over
        rewards = rng.normal(2, 3, size=(t_len, n_envs))
        ended = rng.random((t_len, n_envs)) < 0.05
        expected = []
        for t in range(t_len):
            returns = returns * gamma + rewards[t]
            rms.update(returns)
            expected.append(np.clip(rewards[t] / np.sqrt(rms.var + 1e-8), -10, 10))
            returns[ended[t]] = 0.0
        assert np.array_equal(scaler(rewards, ended), np.array(expected, dtype=np.float32))
        assert np.isclose(scaler.rms.var, rms.var, rtol=1e-12) and np.array_equal(scaler.returns, returns)
