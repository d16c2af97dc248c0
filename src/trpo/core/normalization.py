"""Running statistics for observation normalisation and return-based reward scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


class RunningMeanStd:
    """Mean and variance of a stream of batches (parallel Welford/Chan merge, float64)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 0.0

    def update(self, batch: NDArray[np.floating]) -> None:
        """Merge a batch [B, *shape] into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[0] == 0:
            return
        self.merge(batch.shape[0], batch.mean(axis=0), batch.var(axis=0))

    def merge(self, b_count: float, b_mean: NDArray[np.float64], b_var: NDArray[np.float64]) -> None:
        """Merge the statistics of another stream (count, mean, population variance) into these.

        Chan et al.: n = n_a + n_b, mean = mean_a + d n_b / n, M2 = M2_a + M2_b + d^2 n_a n_b / n, d = mean_b - mean_a.
        """
        if b_count == 0:
            return
        total = self.count + b_count
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (b_count / total)
        m2 = self.var * self.count + b_var * b_count + delta**2 * (self.count * b_count / total)
        self.var = m2 / total
        self.count = total

    def state(self) -> dict[str, NDArray[np.float64]]:
        return {"mean": self.mean, "var": self.var, "count": np.asarray(self.count, dtype=np.float64)}

    def load_state(self, state: dict[str, NDArray[np.float64]]) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(self.mean.shape)
        self.var = np.asarray(state["var"], dtype=np.float64).reshape(self.var.shape)
        self.count = float(state["count"])


def flat_batch(obs: NDArray[Any]) -> NDArray[Any]:
    """A batch of observations [B, *shape] as [B, D] (multi-dimensional observations are flattened)."""
    return obs.reshape(obs.shape[0], -1) if obs.ndim > 2 else obs


class ObservationNormalizer:
    """obs -> clip((obs - mean) / sqrt(var + eps), -clip, clip); identity when disabled. Takes batches
    [B, *obs_shape] and returns [B, D] (statistics are per element of the flattened observation)."""

    def __init__(self, shape: tuple[int, ...], enabled: bool, clip: float, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.enabled = enabled
        self.clip = clip
        self.eps = eps

    def __call__(self, obs: NDArray[np.floating]) -> NDArray[np.float32]:
        obs = flat_batch(obs)
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def update(self, obs: NDArray[np.floating]) -> None:
        if self.enabled:
            self.rms.update(flat_batch(obs))


class RewardScaler:
    """r -> clip(r / sqrt(Var[R] + eps)), R the running discounted return of each env (training only)."""

    def __init__(self, n_envs: int, gamma: float, enabled: bool, clip: float, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(())
        self.returns = np.zeros(n_envs, dtype=np.float64)
        self.gamma = gamma
        self.enabled = enabled
        self.clip = clip
        self.eps = eps

    def __call__(self, rewards: NDArray[np.floating], ended: NDArray[np.bool_]) -> NDArray[np.float32]:
        """Scale a rollout's rewards [T, E], step by step, as if the statistics were updated every step.

        R_t = gamma R_{t-1} + r_t (reset after an episode ends); the reward of step t is divided by the
        std of all returns seen up to and including step t. The running variance after every step
        comes from cumulative sums shifted by the mean before the rollout (Chan's merge, stable).
        """
        if not self.enabled:
            return np.asarray(rewards, dtype=np.float32)
        n_steps, n_envs = rewards.shape
        returns = np.empty((n_steps, n_envs), dtype=np.float64)
        running = self.returns
        for t in range(n_steps):
            running = running * self.gamma + rewards[t]
            returns[t] = running
            running = np.where(ended[t], 0.0, running)
        self.returns = running
        n0, mean0, var0 = self.rms.count, float(self.rms.mean), float(self.rms.var)
        shifted = returns - mean0
        s1 = np.cumsum(shifted.sum(axis=1))
        s2 = np.cumsum((shifted * shifted).sum(axis=1))
        n = n0 + n_envs * np.arange(1, n_steps + 1)
        var = (n0 * var0 + s2 - s1 * s1 / n) / n
        self.rms.load_state({"mean": np.asarray(mean0 + s1[-1] / n[-1]), "var": np.asarray(var[-1]), "count": n[-1]})
        scaled = np.clip(rewards / np.sqrt(var + self.eps)[:, None], -self.clip, self.clip)
        return scaled.astype(np.float32)
