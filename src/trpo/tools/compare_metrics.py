"""The numbers `trpo compare` reports, as pure functions of one run's curves (and their aggregation
over seeds). Curves are (steps, values) arrays; NaN values (no evaluation at that update, no finished
episode yet) are skipped."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _valid(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(values)
    return steps[keep], values[keep]


def value_at(steps: np.ndarray, values: np.ndarray, at: float) -> float:
    """The curve's value at step `at`: the last point with step <= at (NaN if there is none)."""
    x, y = _valid(steps, values)
    before = np.nonzero(x <= at)[0]
    return float(y[before[-1]]) if before.size else math.nan


def steps_to_threshold(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """min { step : value(step) >= threshold } (NaN if the curve never reaches it)."""
    x, y = _valid(steps, values)
    reached = np.nonzero(y >= threshold)[0]
    return float(x[reached[0]]) if reached.size else math.nan


def fraction_lowered(values: np.ndarray) -> float:
    """Fraction of consecutive pairs with v_i < v_{i-1}: how often an update (or the updates between
    two evaluations) made the return worse; 0 is monotonic improvement (NaN with fewer than 2 points)."""
    v = values[~np.isnan(values)]
    return float(np.mean(np.diff(v) < 0)) if v.size >= 2 else math.nan


def worst_drop(values: np.ndarray) -> float:
    """max_i (v_{i-1} - v_i), floored at 0: the largest fall between consecutive points (NaN with
    fewer than 2 points)."""
    v = values[~np.isnan(values)]
    return float(max(0.0, np.max(v[:-1] - v[1:]))) if v.size >= 2 else math.nan


@dataclass(frozen=True)
class Aggregate:
    """Mean and sample standard deviation over seeds, and how many seeds had a value."""

    mean: float
    std: float
    n: int
    total: int

    def text(self, digits: int = 1) -> str:
        """'mean ± std' ('—' without values; with some seeds missing, 'k/N' is appended)."""
        if self.n == 0:
            return "—"
        out = f"{self.mean:.{digits}f}" if self.n == 1 else f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return out if self.n == self.total else f"{out} ({self.n}/{self.total})"


def aggregate(values: list[float]) -> Aggregate:
    """Mean ± std (ddof 1) of the non-NaN `values`."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    mean = float(v.mean()) if v.size else math.nan
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0 if v.size else math.nan
    return Aggregate(mean, std, int(v.size), len(values))
