"""Trust-region health: metrics of TRPO's known failure modes, and alarms that say when one appears.

Each alarm is a rule on the diagnostics row of one update (plus, for some, how many updates in a row
it has held); a rule whose keys an algorithm does not log never holds (NPG and PPO have no line
search, PPO no conjugate gradient). Its thresholds are `alarm_*` fields of `TRPOConfig`;
docs/health.md explains each rule, why it matters and what to do. `HealthMonitor` evaluates the
rules every update, adds an `alarms/<name>` scalar (1 while the rule holds, else 0) to the row, and
reports each alarm the first time it fires.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trpo.config.schema import ALGOS, SAFE, TRPOConfig

RELU_FAMILY = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SiLU)


@torch.no_grad()
def dead_unit_fractions(layers: nn.Module, x: Tensor) -> list[float]:
    """For each ReLU-family activation in `layers`: the fraction of its units whose input
    (pre-activation) is <= 0 on every row of `x`. Such a unit outputs a constant (0 for ReLU) on the
    whole batch and passes (almost) no gradient: it is dead. Other activations are skipped."""
    fractions = []
    for layer in layers.children():
        if isinstance(layer, RELU_FAMILY):
            fractions.append(float((x <= 0).all(dim=0).float().mean()))
        x = layer(x)
    return fractions


def exploration_ratio(entropy: float, initial_entropy: float, action_dims: int, gaussian: bool) -> float:
    """How much exploration is left, relative to the first update (1 = as much, 0 = none).

    Gaussian: exp((H - H0) / d), the ratio of the geometric-mean standard deviations (the entropy of
    a d-dimensional Gaussian is sum_i log sigma_i + const). Discrete: H / H0 (entropies are >= 0).
    """
    if gaussian:
        return math.exp((entropy - initial_entropy) / action_dims)
    return entropy / initial_entropy if initial_entropy > 0 else math.nan


@dataclass(frozen=True)
class Alarm:
    """One failure mode: `holds(row, config)` says whether this update shows it; it fires once it has
    held for `streak(config)` updates in a row."""

    name: str
    message: str
    fix: str
    holds: Callable[[dict[str, float], TRPOConfig], bool]
    streak: Callable[[TRPOConfig], int] = lambda cfg: 1
    algos: tuple[str, ...] = ALGOS
    """The algorithms it watches (the others' rows have no `alarms/<name>` column)."""


def _gt(row: dict[str, float], key: str, limit: float) -> bool:
    value = row.get(key, math.nan)
    return not math.isnan(value) and value > limit


ALARMS: tuple[Alarm, ...] = (
    Alarm(
        "kl_spike",
        "an accepted update moved the policy far more at some state than the mean KL shows",
        "normalise observations (normalize_obs), lower max_kl, or look for rare extreme observations",
        lambda row, cfg: (
            row.get("train/line_search_success", 1.0) == 1
            and _gt(row, "train/kl_max", cfg.alarm_kl_spike * row.get("train/max_kl", cfg.max_kl))
        ),
    ),
    Alarm(
        "cg_stall",
        "conjugate gradient is not solving F x = g (relative residual stays high after all iterations)",
        "raise cg_damping (e.g. 0.1 -> 0.3) or cg_iters, or fvp_subsample towards 1.0",
        lambda row, cfg: _gt(row, "train/cg_residual", cfg.alarm_cg_residual),
        lambda cfg: cfg.alarm_cg_updates,
    ),
    Alarm(
        "line_search_failing",
        "the line search accepted no step for several updates in a row: the policy is not changing",
        "lower max_kl, raise backtrack_iters, or check the advantages (critic, reward scale)",
        lambda row, cfg: row.get("train/line_search_success") == 0,  # TRPO only: NPG and PPO have no line search
        lambda cfg: cfg.alarm_line_search_updates,
    ),
    Alarm(
        "entropy_collapse",
        "the policy's exploration has collapsed relative to its start",
        "lower max_kl, raise log_std_init, or use more environments per update; check the reward is not "
        "trivially maximised by one action",
        lambda row, cfg: row.get("train/exploration_ratio", math.inf) < cfg.alarm_entropy_ratio,
    ),
    Alarm(
        "critic_not_learning",
        "the critic explains none of the return's variance, so advantages are biased noise",
        "raise vf_epochs or vf_lr, normalise rewards (normalize_reward), or lower gamma",
        lambda row, cfg: (
            row["train/explained_variance"] < 0
            and row["train/return_std"] > cfg.alarm_ev_min_return_cv * abs(row["train/return_mean"])
        ),
        lambda cfg: cfg.alarm_ev_updates,
    ),
    Alarm(
        "dead_units",
        "a large fraction of a hidden layer's ReLU units are dead (no gradient on the whole batch)",
        "use activation tanh or elu, lower the critic's vf_lr, or normalise observations",
        lambda row, cfg: any(v > cfg.alarm_dead_units for k, v in row.items() if k.startswith("train/dead_units")),
    ),
    Alarm(
        "degenerate_advantages",
        "the advantages are (almost) constant, so normalising them amplifies noise",
        "check that the reward varies with the actions; turn off normalize_advantages for sparse rewards",
        lambda row, cfg: row["train/adv_std"] < cfg.alarm_adv_std,
    ),
    Alarm(
        "stuck_infeasible",
        "the policy has violated the cost limit for many updates in a row without getting back within it "
        "(cpo: recovery steps only, no policy in the trust region is predicted to satisfy the constraint)",
        "check that the cost limit is reachable (a policy with ep_cost_mean <= cost_limit exists), raise max_kl so "
        "that recovery steps move further, or for trpo-lag raise lagrangian_lr (or use lagrangian_kp)",
        lambda row, cfg: row.get("train/infeasible") == 1,
        lambda cfg: cfg.alarm_infeasible_updates,
        SAFE,
    ),
)
ALARM_NAMES = tuple(alarm.name for alarm in ALARMS)


@dataclass
class FiredAlarm:
    """The first update at which an alarm fired (and how many updates it held in all)."""

    name: str
    update: int
    step: int
    message: str
    fix: str
    updates_held: int = 1

    def line(self) -> str:
        return f"alarm {self.name} (update {self.update}, step {self.step:,}): {self.message}; try: {self.fix}"


class HealthMonitor:
    """Evaluates every alarm on each update's diagnostics row; state survives checkpoints."""

    def __init__(self, config: TRPOConfig, gaussian: bool, action_dims: int) -> None:
        self.config = config
        self.gaussian = gaussian
        self.action_dims = action_dims
        self.alarms = tuple(alarm for alarm in ALARMS if config.algo in alarm.algos)
        self.streaks = dict.fromkeys(ALARM_NAMES, 0)
        self.fired: dict[str, FiredAlarm] = {}
        self.initial_entropy: float | None = None
        self.line_search_failures = 0

    def observe(self, row: dict[str, float], update: int, step: int) -> tuple[dict[str, float], list[FiredAlarm]]:
        """The `alarms/*` scalars (and derived health metrics) for `row`, and the alarms that fired
        for the first time at this update."""
        out: dict[str, float] = {}
        if self.initial_entropy is None:
            self.initial_entropy = row["train/entropy"] - row["train/entropy_change"]
        out["train/exploration_ratio"] = exploration_ratio(
            row["train/entropy"], self.initial_entropy, self.action_dims, self.gaussian
        )
        failed = row.get("train/line_search_success") == 0  # only TRPO has a line search
        self.line_search_failures = self.line_search_failures + 1 if failed else 0
        out["train/line_search_failures_in_a_row"] = float(self.line_search_failures)
        full = {**row, **out}
        new: list[FiredAlarm] = []
        for alarm in self.alarms:
            held = alarm.holds(full, self.config)
            self.streaks[alarm.name] = self.streaks[alarm.name] + 1 if held else 0
            firing = held and self.streaks[alarm.name] >= alarm.streak(self.config)
            out[f"alarms/{alarm.name}"] = float(firing)
            if not firing:
                continue
            if alarm.name in self.fired:
                self.fired[alarm.name].updates_held += 1
            else:
                self.fired[alarm.name] = FiredAlarm(alarm.name, update, step, alarm.message, alarm.fix)
                new.append(self.fired[alarm.name])
        return out, new

    def summary(self) -> list[dict[str, Any]]:
        """The fired alarms in the order they first fired (for summary.json)."""
        return [asdict(a) for a in sorted(self.fired.values(), key=lambda a: a.update)]

    def state(self) -> dict[str, Any]:
        return {
            "streaks": dict(self.streaks),
            "fired": self.summary(),
            "initial_entropy": self.initial_entropy,
            "line_search_failures": self.line_search_failures,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.streaks.update({k: int(v) for k, v in state["streaks"].items() if k in self.streaks})
        self.fired = {a["name"]: FiredAlarm(**a) for a in state["fired"]}
        initial = state["initial_entropy"]
        self.initial_entropy = None if initial is None else float(initial)
        self.line_search_failures = int(state["line_search_failures"])
