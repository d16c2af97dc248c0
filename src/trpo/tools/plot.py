"""`trpo plot`: learning curves of runs grouped by environment and algorithm (mean and spread over
seeds, x in environment steps), or the trust-region diagnostics of one run."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from trpo.errors import UserError
from trpo.run.run_dir import PROGRESS, RunDir, check_output

STEPS = "time/steps"
GRID_POINTS = 200


@dataclasses.dataclass(frozen=True)
class PlotArgs:
    """Plot learning curves from run directories (a directory holding several runs, such as a returns
    benchmark's output, is searched for them). Runs of the same environment and algorithm are
    averaged: a line for the mean over seeds and a band of +- one standard deviation."""

    run_dirs: Annotated[
        tyro.conf.Positional[tuple[Path, ...]], tyro.conf.arg(metavar="RUN_DIR [RUN_DIR ...]", help_behavior_hint="")
    ]
    """Run directories written by `trpo train`, or directories containing them."""
    out: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """PNG to write (default: RUN_DIR/curves.png for one RUN_DIR, a run or a directory of runs; with several,
    curves.png in the directory that holds the first; --diagnostics: RUN_DIR/diagnostics.png)."""
    metric: str = "rollout/ep_return_mean"
    """progress.csv column to plot against environment steps."""
    diagnostics: bool = False
    """Plot one run's trust-region diagnostics (KL, entropy, CG residual, explained variance, ...)."""
    force: bool = False
    """Replace the PNG if it exists (a run's own files are never replaced)."""
    costs: bool = False
    """Add a row of episode-cost curves (rollout/ep_cost_mean, for environments with costs) under --metric's, with
    the constrained runs' cost_limit as a dashed line."""


@dataclasses.dataclass
class Run:
    """One run's progress.csv columns and what it trained."""

    path: Path
    env_id: str
    algo: str
    seed: int | None
    columns: dict[str, np.ndarray]
    max_kl: float | None
    alarms: list[dict[str, Any]]
    cost_limit: float | None = None
    """The run's cost_limit when its algorithm is a constrained one (cpo, trpo-lag)."""


def find_runs(paths: tuple[Path, ...]) -> list[Path]:
    """Run directories (those holding a progress.csv) among `paths` and below them."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory; pass run directories written by `trpo train`")
        runs = [path] if RunDir(path).progress.exists() else sorted(p.parent for p in path.rglob(PROGRESS))
        if not runs:
            raise UserError(f"{path} holds no {PROGRESS}: it is not a run directory and contains none")
        found.extend(r for r in runs if r not in found)
    return found


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """progress.csv as float columns (empty or non-numeric cells are NaN)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a trpo progress log ({str(exc)[:100]})") from None
    if not rows:
        raise UserError(f"{path} has no rows yet: the run has not finished an update")

    def number(text: str | None) -> float:
        try:
            return float(text) if text else math.nan
        except ValueError:
            return math.nan

    return {key: np.array([number(r.get(key)) for r in rows]) for key in rows[0]}


def read_json(path: Path) -> dict[str, Any]:
    """A run's JSON file read within bounds ({} when it is missing, too large or not a JSON object)."""
    from trpo.run.checkpoint import MAX_STATE_BYTES, CheckpointError, parse_bounded_json

    try:
        if path.is_symlink() or path.stat().st_size > MAX_STATE_BYTES:
            return {}
        data = parse_bounded_json(path.read_bytes(), str(path))
    except (OSError, CheckpointError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    """A JSON number as a float (None for anything else: a run's files are data)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_run(path: Path) -> Run:
    """A run's curves, with env id, algorithm and seed from summary.json or its checkpoint."""
    summary = read_json(RunDir(path).summary)
    state = read_json(RunDir(path).checkpoint / "state.json")
    config = state.get("config", {}) if isinstance(state.get("config"), dict) else {}
    env_id = summary.get("env_id") or state.get("env_id") or path.name
    seed = summary.get("seed", config.get("seed"))
    health = state.get("health")
    alarms = summary.get("alarms") or (health.get("fired", []) if isinstance(health, dict) else [])
    alarms = (
        [a for a in alarms if isinstance(a, dict) and isinstance(a.get("step", 0), int)]
        if isinstance(alarms, list)
        else []
    )
    max_kl = config.get("max_kl")
    return Run(
        path=path,
        env_id=str(env_id),
        algo=str(summary.get("algo") or state.get("algo") or "trpo"),
        seed=int(seed) if isinstance(seed, int) else None,
        columns=read_columns(RunDir(path).progress),
        max_kl=_number(max_kl),
        alarms=alarms,
        cost_limit=_number(config.get("cost_limit")) if config.get("algo") in ("cpo", "trpo-lag") else None,
    )


def mean_and_spread(curves: list[tuple[np.ndarray, np.ndarray]], points: int = GRID_POINTS) -> tuple[np.ndarray, ...]:
    """Curves (x, y) interpolated on a common grid of x: (grid, mean, std, number of runs) per point.
    A run counts only within its own x range; NaN values (no finished episode yet) are skipped."""
    valid = [(x[~np.isnan(y)], y[~np.isnan(y)]) for x, y in curves]
    valid = [(x, y) for x, y in valid if x.size > 0]
    if not valid:
        return np.array([]), np.array([]), np.array([]), np.array([])
    grid = np.linspace(min(x[0] for x, _ in valid), max(x[-1] for x, _ in valid), points)
    stacked = np.full((len(valid), points), np.nan)
    for i, (x, y) in enumerate(valid):
        inside = (grid >= x[0]) & (grid <= x[-1])
        stacked[i, inside] = np.interp(grid[inside], x, y)
    mean = _column_mean(stacked)
    std = np.sqrt(_column_mean((stacked - mean) ** 2))
    return grid, mean, std, (~np.isnan(stacked)).sum(axis=0)


def _column_mean(a: np.ndarray) -> np.ndarray:
    """Mean of each column over its non-NaN entries (NaN where there are none), without warnings."""
    count = (~np.isnan(a)).sum(axis=0)
    return np.where(count > 0, np.nansum(a, axis=0) / np.maximum(count, 1), np.nan)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seed_list(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds[:5])) + (", ..." if len(seeds) > 5 else "")


def group_label(algo: str, runs: list[Run]) -> str:
    """'trpo (3 seeds)'; 'trpo (4 runs, 1 seed: 0)' when runs repeat a seed; 'trpo (2 runs)' when a
    run's seed is unknown."""
    seeds = [r.seed for r in runs]
    known = sorted({s for s in seeds if s is not None})
    if None in seeds:
        return f"{algo} ({_plural(len(runs), 'run')})"
    if len(known) == len(runs):
        return f"{algo} ({_plural(len(runs), 'seed')})"
    return f"{algo} ({_plural(len(runs), 'run')}, {_plural(len(known), 'seed')}: {_seed_list(known)})"


def identical_curves(a: list[Run], b: list[Run], metric: str) -> bool:
    """Both groups hold the same seeds and, seed by seed, the same steps and `metric` values: their
    lines would lie exactly on top of each other."""
    if len(a) != len(b) or any(r.seed is None for r in a + b):
        return False
    pairs = zip(sorted(a, key=lambda r: r.seed or 0), sorted(b, key=lambda r: r.seed or 0), strict=True)
    return all(
        x.seed == y.seed
        and np.array_equal(x.columns[STEPS], y.columns[STEPS])
        and np.allclose(x.columns[metric], y.columns[metric], rtol=1e-9, atol=1e-9, equal_nan=True)
        for x, y in pairs
    )


def coinciding(groups: dict[str, list[Run]], metric: str) -> dict[str, str]:
    """{label: the earlier label (in sorted order) whose curve it repeats exactly}."""
    labels = sorted(groups)
    same: dict[str, str] = {}
    for i, label in enumerate(labels):
        for earlier in labels[:i]:
            if earlier not in same and identical_curves(groups[earlier], groups[label], metric):
                same[label] = earlier
                break
    return same


def common_range(runs: list[Run], metric: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], float | None]:
    """The runs' (steps, metric) curves, cut at the last step of the shortest run when the runs end at
    different steps (different budgets); that step, or None when they all end together."""
    ends = [float(r.columns[STEPS][-1]) for r in runs]
    curves = [(r.columns[STEPS], r.columns[metric]) for r in runs]
    if max(ends) == min(ends):
        return curves, None
    end = min(ends)
    return [(x[x <= end], y[x <= end]) for x, y in curves], end


COST = "rollout/ep_cost_mean"


def plot_curves(runs: list[Run], metric: str, out: Path, costs: bool = False) -> list[str]:
    """One panel per environment; per algorithm the mean over its runs and a +- std band (`costs`: a second row
    of episode-cost curves with the cost limits dashed). Returns notes on what the picture alone does not say:
    curves drawn over one another (the later one is dashed, with markers), runs that repeat a seed, and means cut
    where the shortest run of a group ends."""
    import matplotlib.pyplot as plt

    metrics = (metric, COST) if costs and metric != COST else (metric,)
    for run in runs:
        for m in metrics:
            if m not in run.columns:
                close = [k for k in run.columns if m.split("/")[-1] in k] or list(run.columns)[:8]
                hint = " (the environment reports no costs in info['cost'])" if m == COST else ""
                raise UserError(f"{run.path} has no column {m!r}{hint}; e.g. {', '.join(close)}")
    groups: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[run.env_id][run.algo].append(run)
    fig, axes = plt.subplots(len(metrics), len(groups), figsize=(5.5 * len(groups), 4 * len(metrics)), squeeze=False)
    notes: list[str] = []
    for row, m in zip(axes, metrics, strict=True):
        for ax, (env_id, by_algo) in zip(row, sorted(groups.items()), strict=True):
            same = coinciding(by_algo, m)
            for algo, members in sorted(by_algo.items()):
                notes += _plot_group(ax, env_id, algo, members, m, same.get(algo))
            limits = sorted({r.cost_limit for ms in by_algo.values() for r in ms if r.cost_limit is not None})
            if "cost" in m:
                for limit in limits:
                    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"cost limit {limit:g}")
            ax.set_title(env_id)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(m)
            ax.grid(alpha=0.3)
            ax.legend(loc="best")
    _save(fig, out)
    return list(dict.fromkeys(notes))


def _plot_group(ax: Any, env_id: str, algo: str, runs: list[Run], metric: str, same_as: str | None) -> list[str]:
    """Draw one group's mean and band on `ax`; the notes about it."""
    curves, end = common_range(runs, metric)
    grid, mean, std, _ = mean_and_spread(curves)
    label, style, notes = group_label(algo, runs), {}, []
    if same_as is not None:
        label += f" = {same_as}"
        style = {"linestyle": "--", "marker": "o", "markersize": 4, "markevery": max(1, GRID_POINTS // 12)}
        notes.append(f"{env_id}: the {same_as} and {algo} curves coincide (the same {metric} at every logged step "
                     f"of every seed); {algo} is drawn dashed with markers")  # fmt: skip
    if end is not None:
        label += f", mean to {end:,.0f} steps"
        longest = max(float(r.columns[STEPS][-1]) for r in runs)
        ends = f"the runs end between {end:,.0f} and {longest:,.0f} steps"
        drawn = f"the mean is drawn to {end:,.0f}, where the shortest ends, and each longer run alone after it (thin)"
        notes.append(f"{env_id} {algo}: {ends}; {drawn}")
    seeds = [r.seed for r in runs if r.seed is not None]
    distinct = sorted(set(seeds))
    if len(distinct) < len(seeds):
        shared = f"{_plural(len(distinct), 'seed')} ({_seed_list(distinct)})"
        notes.append(f"{env_id} {algo}: {len(runs)} runs share {shared}; the band is their spread, not over seeds")
    (line,) = ax.plot(grid, mean, label=label, **style)
    if len(runs) > 1:
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.25, linewidth=0)
    for run in runs if end is not None else []:
        x, y = run.columns[STEPS], run.columns[metric]
        ax.plot(x[x >= end], y[x >= end], color=line.get_color(), linewidth=0.8, alpha=0.6)
    return notes


DIAGNOSTIC_PANELS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("return (last 100 episodes)", ("rollout/ep_return_mean",), False),
    ("KL (mean, max per state)", ("train/kl", "train/kl_max"), True),
    ("entropy", ("train/entropy",), False),
    ("CG relative residual", ("train/cg_residual",), True),
    ("explained variance", ("train/explained_variance",), False),
    ("value loss (before, after fit)", ("train/value_loss_before", "train/value_loss"), True),
)


def plot_diagnostics(run: Run, out: Path) -> None:
    """The trust region's health over one run: return, KL against delta, entropy, CG residual,
    explained variance and critic loss; dotted vertical lines where alarms first fired."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    x = run.columns[STEPS]
    for ax, (title, keys, log_scale) in zip(axes.flat, DIAGNOSTIC_PANELS, strict=True):
        for key in keys:
            if key in run.columns:
                ax.plot(x, run.columns[key], label=key.split("/", 1)[1], linewidth=1)
        if title.startswith("KL") and "train/max_kl" in run.columns:  # a delta schedule
            ax.plot(x, run.columns["train/max_kl"], color="black", linestyle="--", linewidth=1, label="max_kl (delta)")
        elif title.startswith("KL") and run.max_kl is not None:
            ax.axhline(run.max_kl, color="black", linestyle="--", linewidth=1, label="max_kl (delta)")
        if title.startswith("explained"):
            ax.axhline(0, color="black", linewidth=0.8)
        for alarm in run.alarms:
            ax.axvline(float(alarm.get("step", 0)), color="red", linestyle=":", linewidth=1)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        if len(keys) > 1 or title.startswith("KL"):
            ax.legend(loc="best", fontsize="small")
    names = ", ".join(f"{a.get('name')} @ {int(a.get('step', 0)):,}" for a in run.alarms) or "none"
    fig.suptitle(f"{run.env_id} ({run.algo}, seed {run.seed}) — alarms: {names}")
    _save(fig, out)


def _save(fig: Any, out: Path) -> None:
    """Write the figure's PNG atomically (a crash never leaves half a file at `out`)."""
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, out)


def default_out(run_dirs: tuple[Path, ...], name: str) -> Path:
    """Where `trpo plot` writes without --out: in the one directory given (a run, or a directory of
    runs); with several, next to the first (in the directory that holds it)."""
    first = run_dirs[0]
    if len(run_dirs) == 1:
        return first / name
    return (first.parent if first.name not in ("", "..") else first.resolve().parent) / name


def plot(args: PlotArgs) -> tuple[Path, list[str]]:
    """Run `trpo plot`; returns the PNG written and the notes on it (see `plot_curves`)."""
    import matplotlib

    matplotlib.use("Agg")
    if not args.run_dirs:
        raise UserError("trpo plot needs at least one run directory, e.g. `trpo plot runs/CartPole-v1-trpo-0-*`")
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out} must end in .png")
    runs = [load_run(path) for path in find_runs(args.run_dirs)]
    if args.diagnostics:
        if len(runs) != 1:
            raise UserError(f"--diagnostics plots one run; {len(runs)} runs were given")
        out = args.out or RunDir(runs[0].path).diagnostics
        check_output(out, args.force)
        plot_diagnostics(runs[0], out)
        return out, []
    out = args.out or default_out(args.run_dirs, "curves.png")
    check_output(out, args.force)
    return out, plot_curves(runs, args.metric, out, costs=args.costs)
