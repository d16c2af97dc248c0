"""Running statistics for observation normalisation and return-based reward scaling."""

from __future__ import annotations

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
        b_count = batch.shape[0]
        if b_count == 0:
            return
        b_mean = batch.mean(axis=0)
        b_var = batch.var(axis=0)
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


class ObservationNormalizer:
    """obs -> clip((obs - mean) / sqrt(var + eps), -clip, clip); identity when disabled."""

    def __init__(self, shape: tuple[int, ...], enabled: bool, clip: float, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(shape)
        self.enabled = enabled
        self.clip = clip
        self.eps = eps

    def __call__(self, obs: NDArray[np.floating]) -> NDArray[np.float32]:
        if not self.enabled:
            return np.asarray(obs, dtype=np.float32)
        z = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def update(self, obs: NDArray[np.floating]) -> None:
        if self.enabled:
            self.rms.update(obs)


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
        """Scale this step's rewards, then reset the return of envs whose episode ended."""
        if not self.enabled:
            return np.asarray(rewards, dtype=np.float32)
        self.returns = self.returns * self.gamma + rewards
        self.rms.update(self.returns)
        scaled = np.clip(rewards / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)
        self.returns[ended] = 0.0
        return scaled.astype(np.float32)
