"""`trpo compare ENV_ID`: TRPO, NPG and PPO (and on an environment with costs CPO and TRPO-Lagrangian) on the same
environment, seeds and budget, measured.

Every (algorithm, seed[, swept value]) is a separate `trpo train` process (`--workers` at a time) with
periodic deterministic evaluation (`eval_every`, about `--evals` per run). The numbers come from each
run's progress.csv and summary.json (`trpo.tools.compare_metrics`); per algorithm they are aggregated as
mean ± std over seeds and written to OUT/compare.md, OUT/compare.csv and OUT/compare.png.

Why this file is long (~470 lines): one command's whole pipeline (plan, parallel runs with progress, per-run metrics,
the markdown table, CSV and plot), each step a short function; splitting it would scatter one feature.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import shlex
import subprocess
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Annotated, Any

import numpy as np
import tyro

from trpo.config.presets import preset_config
from trpo.config.safe_yaml import load_yaml_text, short
from trpo.config.schema import Algo, TRPOConfig, config_from_dict, load_yaml_config, load_yaml_env, reads
from trpo.errors import UserError
from trpo.run.run_dir import RunDir
from trpo.sampling.env_spec import EnvSpec, command_spec, spec_from_data
from trpo.tools.compare_metrics import Aggregate, aggregate, fraction_lowered, steps_to_threshold, value_at, worst_drop
from trpo.tools.parallel import default_workers, run_all, train_command
from trpo.tools.plot import Run, load_run, plot_curves, read_json

EVAL = "eval/mean_return"
TRAIN_RETURN = "rollout/ep_return_mean"
ALGOS: tuple[str, ...] = typing.get_args(Algo)


@dataclasses.dataclass(frozen=True)
class CompareArgs:
    """Train each algorithm on ENV_ID for every seed (each with its preset for the environment) and
    compare sample efficiency, wall-clock time, stability and KL per update in one table."""

    env_id: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="ENV_ID")]
    """Gymnasium environment id, e.g. CartPole-v1 (MODULE:ENV_ID imports MODULE first)."""
    env_kwargs: Annotated[str | None, tyro.conf.arg(metavar="MAPPING", help_behavior_hint="")] = None
    """Keyword arguments of the environment, a JSON or YAML mapping (as `trpo train --env-kwargs`)."""
    wrapper: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="MODULE:CLASS")] = ()
    """Wrapper around every environment, MODULE:CLASS or MODULE:CLASS={"kwarg": value} (as `trpo train --wrapper`)."""
    algos: str = "trpo,ppo,npg"
    """Comma-separated algorithms to compare (trpo, npg, ppo, cpo, trpo-lag), e.g. trpo,cpo,trpo-lag on an environment
    with costs (the table then has cost rows)."""
    cost_limit: Annotated[float | None, tyro.conf.arg(metavar="FLOAT", help_behavior_hint="")] = None
    """The cost_limit of the constrained algorithms (cpo, trpo-lag) among --algos (default: their preset's or
    TRPOConfig's); the table's cost rows say how many seeds end within it."""
    seeds: int = 5
    """Seeds per algorithm (0 .. seeds-1)."""
    total_steps: Annotated[int | None, tyro.conf.arg(metavar="INT", help_behavior_hint="")] = None
    """Environment steps per run (default: the preset's total_steps of each algorithm)."""
    config: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """YAML file of config fields applied to every algorithm on top of its preset (e.g. the same network
    and rollouts for all, so that only the policy update differs)."""
    out: Path = Path("runs/compare")
    """Output directory: runs/, compare.md, compare.csv, compare.png."""
    workers: int = dataclasses.field(default_factory=default_workers)
    """Runs in parallel (processes; default: the number of CPUs)."""
    threshold: Annotated[float | None, tyro.conf.arg(metavar="FLOAT", help_behavior_hint="")] = None
    """Return for 'steps to threshold' (default: the environment's reward_threshold, if it has one)."""
    evals: int = 20
    """Periodic deterministic evaluations per run (the stability metrics are computed on them)."""
    eval_episodes: int = 5
    """Episodes per periodic evaluation."""
    sweep: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """Sensitivity: FIELD=V1,V2,... (e.g. max_kl=0.005,0.01,0.02 or clip_range=0.1,0.2,0.3), run for the
    algorithms whose update uses the field; repeat the flag for several fields."""
    rerun: bool = False
    """Train every run again, even those OUT already holds complete with the same config (reused by default)."""


@dataclasses.dataclass(frozen=True)
class Job:
    algo: str
    seed: int
    changes: tuple[tuple[str, Any], ...]
    """Config fields changed from the preset (the swept one)."""
    config: TRPOConfig
    run_dir: Path

    @property
    def label(self) -> str:
        return " ".join([self.algo, *(f"{k}={v}" for k, v in self.changes)])


@dataclasses.dataclass(frozen=True)
class RunResult:
    job: Job
    metrics: dict[str, float]
    run: Run


METRICS: tuple[tuple[str, str, int], ...] = (
    # key, row label, digits
    ("final_return", "final deterministic return (10 episodes)", 1),
    ("return_25", "return at 25% of the budget", 1),
    ("return_50", "return at 50% of the budget", 1),
    ("return_75", "return at 75% of the budget", 1),
    ("steps_to_threshold", "steps to reach the threshold", 0),
    ("wall_time_s", "training wall time (s)", 1),
    ("steps_per_s", "steps/s (rollout + update)", 0),
    ("update_ms", "time per update (ms)", 1),
    ("updates", "updates", 0),
    ("kl_mean", "mean KL per update", 4),
    ("kl_max", "max KL of an update", 4),
    ("fraction_lowered", "fraction of evaluation intervals that lowered the return", 2),
    ("worst_drop", "worst drop between consecutive evaluations", 1),
    ("updates_over_delta", "fraction of updates with KL > delta (TRPO, NPG)", 2),
    ("max_kl_over_delta", "max KL / delta (TRPO, NPG)", 2),
    ("backtracks", "line-search backtracks per run (TRPO)", 1),
    ("line_search_failures", "line-search failures (TRPO)", 1),
)
COST_METRICS: tuple[tuple[str, str, int], ...] = (
    ("final_cost", "final deterministic episode cost (10 episodes)", 2),
    ("train_cost_last", "episode cost during training, last 10% of updates", 2),
    ("train_return_last", "episode return during training, last 10% of updates", 1),
    ("within_limit", "seeds whose training cost ends within the limit (fraction)", 2),
    ("infeasible_updates", "updates violating the limit (trpo-lag) / recovery steps (cpo)", 1),
)
"""The rows added when the environment reports costs (rollout/ep_cost_mean in progress.csv)."""
COST = "rollout/ep_cost_mean"
SWEEP_METRICS = ("final_return", "return_50", "kl_mean", "kl_max", "fraction_lowered", "worst_drop")


def cost_metrics(run: Run, summary: dict[str, Any], cost_limit: float | None) -> dict[str, float]:
    """A run's cost numbers (NaN without costs): the final deterministic episode cost, the training episode cost and
    return averaged over the last 10% of updates, whether that cost is within `cost_limit` (1/0; NaN without a
    limit), and the updates that violated it (train/infeasible)."""
    c = run.columns
    if COST not in c:
        return dict.fromkeys((k for k, _, _ in COST_METRICS), math.nan)
    tail = max(1, len(c[COST]) // 10)

    def last(values: np.ndarray) -> float:
        return math.nan if np.isnan(values[-tail:]).all() else float(np.nanmean(values[-tail:]))

    last_cost = last(c[COST])
    infeasible = c.get("train/infeasible")
    return {
        "final_cost": float(summary.get("mean_cost", math.nan)),
        "train_cost_last": last_cost,
        "train_return_last": last(c[TRAIN_RETURN]),
        "within_limit": math.nan if cost_limit is None or math.isnan(last_cost) else float(last_cost <= cost_limit),
        "infeasible_updates": math.nan if infeasible is None else float(np.nansum(infeasible)),
    }


def run_metrics(run: Run, summary_return: float, total_steps: int, threshold: float | None) -> dict[str, float]:
    """One run's numbers, from its progress.csv columns (evaluation curve when present, else the
    training curve) and its final deterministic return."""
    c = run.columns
    steps = c["time/steps"]
    curve = c[EVAL] if EVAL in c and not np.isnan(c[EVAL]).all() else c[TRAIN_RETURN]
    train_s = c["time/rollout_s"] + c["time/update_s"]
    success = c.get("train/line_search_success")
    over = c.get("train/kl_over_delta")  # absent for PPO, which has no delta
    backtracks = c.get("train/backtracks")
    return {
        "final_return": summary_return,
        **{f"return_{p}": value_at(steps, curve, p / 100 * total_steps) for p in (25, 50, 75)},
        "steps_to_threshold": math.nan if threshold is None else steps_to_threshold(steps, curve, threshold),
        "wall_time_s": float(train_s.sum()),
        "steps_per_s": float(steps[-1] / train_s.sum()),
        "update_ms": 1000 * float(c["time/update_s"].mean()),
        "updates": float(len(steps)),
        "kl_mean": float(np.nanmean(c["train/kl"])),
        "kl_max": float(np.nanmax(c["train/kl"])),
        "fraction_lowered": fraction_lowered(curve),
        "worst_drop": worst_drop(curve),
        "updates_over_delta": math.nan if over is None else float(np.mean(over > 1)),
        "max_kl_over_delta": math.nan if over is None else float(np.nanmax(over)),
        "backtracks": math.nan if backtracks is None else float(np.nansum(backtracks)),
        "line_search_failures": math.nan if success is None else float((success == 0).sum()),
    }


def parse_algos(text: str) -> list[str]:
    algos = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in algos if a not in ALGOS]
    if not algos or unknown:
        raise UserError(f"--algos must be a comma-separated list of {', '.join(ALGOS)} (got {text!r})")
    return list(dict.fromkeys(algos))


def parse_sweep(text: str, algos: list[str]) -> tuple[str, list[Any], list[str]]:
    """'field=v1,v2' -> (field, values, the algorithms among `algos` whose update uses the field)."""
    field, sep, values_text = text.partition("=")
    field = field.strip().replace("-", "_")
    if not sep or not values_text.strip():
        raise UserError(f"--sweep {text!r} must look like FIELD=V1,V2,..., e.g. max_kl=0.005,0.01,0.02")
    values = [load_yaml_text(v, f"--sweep {field} value {short(v)}") for v in values_text.split(",")]
    for value in values:  # names, types and ranges are checked like a config file's
        config_from_dict({field: value}, source="--sweep").validate(unread="keep")
    users = [a for a in algos if reads(a, field)]  # the algorithms each field declares it is read by
    if not users:
        raise UserError(f"--sweep {field}: no algorithm in --algos {','.join(algos)} uses {field}")
    return field, values, users


def plan(args: CompareArgs) -> tuple[list[Job], list[tuple[str, list[Any], list[str]]]]:
    """The runs to make: every algorithm x seed at its preset, then every swept value."""
    if args.seeds < 1 or args.evals < 1 or args.eval_episodes < 1 or args.workers < 1:
        raise UserError("--seeds, --evals, --eval-episodes and --workers must be >= 1")
    if args.total_steps is not None and args.total_steps < 1:
        raise UserError(f"--total-steps must be >= 1 (got {args.total_steps})")
    algos = parse_algos(args.algos)
    sweeps = [parse_sweep(s, algos) for s in args.sweep]
    variants: list[tuple[str, tuple[tuple[str, Any], ...]]] = [(a, ()) for a in algos]
    variants += [(a, ((field, v),)) for field, values, users in sweeps for a in users for v in values]
    jobs: list[Job] = []
    run_dirs: dict[TRPOConfig, Path] = {}  # a swept value equal to the preset's reuses the preset's run
    for algo, changes in variants:
        config, _ = preset_config(EnvSpec(args.env_id).registered_id, algo=algo)
        if args.config is not None:
            config = load_yaml_config(args.config, base=config).replace(algo=algo).read_only()
        config = config.replace(**dict(changes))
        if args.cost_limit is not None and reads(algo, "cost_limit"):
            config = config.replace(cost_limit=args.cost_limit)
        total = args.total_steps or config.total_steps
        updates = math.ceil(total / config.batch_size)
        config = config.replace(
            total_steps=total, eval_every=max(1, round(updates / args.evals)), eval_every_episodes=args.eval_episodes
        ).validate()
        name = "-".join([algo, *(f"{k}-{v}" for k, v in changes)])
        for seed in range(args.seeds):
            seeded = config.replace(seed=seed)
            run_dir = run_dirs.setdefault(seeded, args.out / "runs" / name / f"seed-{seed}")
            jobs.append(Job(algo, seed, changes, seeded, run_dir))
    return jobs, sweeps


def flags(config: TRPOConfig) -> list[str]:
    """The config as `trpo train` flags (every field, so the run does not depend on presets changing)."""
    out: list[str] = []
    for key, value in config.to_dict().items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def compare_spec(args: CompareArgs) -> EnvSpec:
    """The environment of every run: ENV_ID with its preset's wrappers and kwargs, the --config file's
    env_kwargs/env_wrappers, then the flags (as `trpo train ENV_ID` makes it)."""
    return command_spec(args.env_id, args.config, args.env_kwargs, args.wrapper, preset=True)


def is_complete(job: Job, spec: EnvSpec | None = None) -> bool:
    """`job.run_dir` holds a finished run (summary.json) of exactly `job.config` (and of `spec`'s environment)."""
    try:
        config_yaml = RunDir(job.run_dir).config
        same_env = spec is None or spec_from_data({"env_id": spec.id, **load_yaml_env(config_yaml)}, "") == spec
        return RunDir(job.run_dir).summary.exists() and load_yaml_config(config_yaml) == job.config and same_env
    except UserError:
        return False


class Progress:
    """compare's progress on stderr: what will be trained, then one line per finished run (algorithm,
    seed, final return, wall time) with runs finished of total and an estimate of the time left."""

    def __init__(self, jobs: list[Job], workers: int, file: IO[str] | None = None) -> None:
        self.jobs = jobs
        self.workers = max(1, min(workers, len(jobs)))
        self.file = file or sys.stderr
        self.finished = 0
        self.seconds: list[float] = []
        self.started = time.monotonic()

    def start(self, env_id: str, reused: int, out: Path) -> None:
        runs = f"{len(self.jobs)} run{'s' if len(self.jobs) != 1 else ''}"
        kept = f" ({reused} finished run{'s' if reused != 1 else ''} in {out} reused)" if reused else ""
        at_once = f", {self.workers} at a time" if self.jobs else ""
        self._print(f"compare {env_id}: {runs} to train{kept}{at_once}")

    def done(self, index: int, result: subprocess.CompletedProcess[str], seconds: float) -> None:
        job = self.jobs[index]
        self.finished += 1
        self.seconds.append(seconds)
        if result.returncode == 0:
            final = read_json(RunDir(job.run_dir).summary).get("mean_return")
            outcome = f"final return {final:.1f}" if isinstance(final, (int, float)) else "finished"
        else:
            outcome = f"failed (exit {result.returncode})"
        self._print(f"[{self.finished}/{len(self.jobs)}] {job.label} seed {job.seed}: {outcome}, "
                    f"{seconds:.0f} s; {self.time_left()}")  # fmt: skip

    def time_left(self) -> str:
        """'about H:MM:SS left': the mean time per finished run, times the rounds of `workers` runs left."""
        left = len(self.jobs) - self.finished
        if left == 0:
            return f"all done in {_clock(time.monotonic() - self.started)}"
        mean = sum(self.seconds) / len(self.seconds)
        return f"about {_clock(mean * math.ceil(left / self.workers))} left"

    def _print(self, line: str) -> None:
        print(line, file=self.file, flush=True)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def execute(
    jobs: list[Job],
    spec: EnvSpec,
    workers: int,
    threshold: float | None,
    rerun: bool,
    out_dir: Path,
    cost_limit: float | None = None,
) -> list[RunResult]:
    """Train the jobs not already complete in `out_dir`, then measure every job's run. `cost_limit` is the limit the
    cost rows judge the unconstrained algorithms' runs by (the constrained ones use their own)."""
    first: dict[Path, Job] = {}
    for job in jobs:  # a swept value equal to the preset's shares the preset's run (named by it)
        first.setdefault(job.run_dir, job)
    every = list(first.values())
    unique = [job for job in every if rerun or not is_complete(job, spec)]
    progress = Progress(unique, workers)
    progress.start(spec.id, len(every) - len(unique), out_dir)
    extra = spec.flags()
    commands = [train_command(spec.id, job.run_dir, [*flags(job.config), *extra]) for job in unique]
    done = run_all(commands, workers, on_done=progress.done)
    results = {job.run_dir: result for job, result in zip(unique, done, strict=True)}
    out = []
    for job in jobs:
        result = results.get(job.run_dir)
        if result is not None and result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise UserError(f"run {job.label} seed {job.seed} failed ({job.run_dir}): {last}")
        run = load_run(job.run_dir)
        summary = json.loads(RunDir(job.run_dir).summary.read_text())
        final = float(summary.get("mean_return", math.nan))
        run = dataclasses.replace(run, algo=job.label)
        metrics = run_metrics(run, final, job.config.total_steps, threshold)
        limit = job.config.cost_limit if reads(job.algo, "cost_limit") else cost_limit
        metrics.update(cost_metrics(run, summary, limit))
        out.append(RunResult(job, metrics, run))
    return out


def metrics_of(results: list[RunResult]) -> tuple[tuple[str, str, int], ...]:
    """The table's rows: METRICS, and COST_METRICS when any run's environment reported costs."""
    return METRICS + COST_METRICS if any(COST in r.run.columns for r in results) else METRICS


def by_label(results: list[RunResult]) -> dict[str, dict[str, Aggregate]]:
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.job.label, []).append(r)
    rows = metrics_of(results)
    return {label: {k: aggregate([r.metrics[k] for r in rs]) for k, _, _ in rows} for label, rs in groups.items()}


def markdown(
    args: CompareArgs, results: list[RunResult], sweeps: list[Any], threshold: float | None, notes: Sequence[str] = ()
) -> str:
    """The table of METRICS per algorithm, the sensitivity tables, and `notes` on the plots (e.g. curves
    that coincide), each explained where the table shows why."""
    algos = parse_algos(args.algos)
    stats = by_label(results)
    main = [r for r in results if not r.job.changes]
    budgets = sorted({r.job.config.total_steps for r in main})
    trained = sorted({int(r.run.columns["time/steps"][-1]) for r in main})
    rounded = f" (requested {' / '.join(f'{b:,}' for b in budgets)}, rounded up to whole updates)"
    command = shlex.join(["trpo", "compare", *sys.argv[2:]]) if sys.argv[1:2] == ["compare"] else "trpo compare"
    lines = [
        f"`{command}`",
        "",
        f"{args.env_id}, {args.seeds} seed(s), {' / '.join(f'{b:,}' for b in trained)} steps per run"
        f"{rounded if trained != budgets else ''}; mean ± std "
        f"over seeds. Returns during training are deterministic evaluations ({args.eval_episodes} episodes, "
        f"about {args.evals} per run); threshold: {'—' if threshold is None else threshold}.",
        "",
        "| metric | " + " | ".join(algos) + " |",
        "|---|" + "---|" * len(algos),
    ]
    for key, label, digits in metrics_of(results):
        lines.append(f"| {label} | " + " | ".join(stats[a][key].text(digits) for a in algos) + " |")
    for field, values, users in sweeps:
        lines += ["", f"Sensitivity to {field}:", ""]
        shown = [m for m in metrics_of(results) if m[0] in SWEEP_METRICS or m in COST_METRICS[:3]]
        names = [label for _, label, _ in shown]
        lines += ["| algo | " + field + " | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for algo in users:
            for v in values:
                row = stats[f"{algo} {field}={v}"]
                cells = [row[k].text(d) for k, _, d in shown]
                lines.append(f"| {algo} | {v} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_explain(note, stats)}" for note in notes]
    return "\n".join(lines) + "\n"


def _explain(note: str, stats: dict[str, dict[str, Aggregate]]) -> str:
    """A note on compare.png, with the reason when it is the usual one: TRPO's line search accepted
    every full step, so each TRPO update is NPG's."""
    trpo = stats.get("trpo", {}).get("backtracks")
    if "the npg and trpo curves coincide" in note and trpo is not None and trpo.n and trpo.mean == 0:
        return f"{note} (TRPO's line search never backtracked, so every TRPO update equals NPG's)"
    return note


def write_csv(path: Path, results: list[RunResult]) -> None:
    """One row per (algorithm[, swept value], metric): mean, std, seeds with a value, per-seed values."""
    stats = by_label(results)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "metric", "mean", "std", "n", "values"])
        for label, metrics in stats.items():
            for key, agg in metrics.items():
                values = [r.metrics[key] for r in results if r.job.label == label]
                writer.writerow([label, key, agg.mean, agg.std, agg.n, ";".join(f"{v:.6g}" for v in values)])


def check_out_dir(out: Path) -> None:
    """`--out` must be a directory (or not exist yet), with no file on its path and no link."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"--out {out} is a file (or a link); compare writes a directory: choose another --out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {out}: {parent} is a file, not a directory")
            break


def compare(args: CompareArgs) -> str:
    """Run `trpo compare`; returns the Markdown table (also written to OUT/compare.md)."""
    import matplotlib

    matplotlib.use("Agg")
    from trpo.algos.learner import make_agent

    check_out_dir(args.out)
    jobs, sweeps = plan(args)
    spec = compare_spec(args)
    make_agent(spec, jobs[0].config).close()  # an unknown env id or unsupported space fails here
    threshold = args.threshold
    if threshold is None:
        import gymnasium

        threshold = gymnasium.spec(spec.registered_id).reward_threshold
    args.out.mkdir(parents=True, exist_ok=True)
    limits = {job.config.cost_limit for job in jobs if reads(job.algo, "cost_limit")}
    limit = args.cost_limit if args.cost_limit is not None else (limits.pop() if len(limits) == 1 else None)
    results = execute(jobs, spec, args.workers, threshold, args.rerun, args.out, limit)
    metric = EVAL if all(EVAL in r.run.columns for r in results) else TRAIN_RETURN
    costs = any(COST in r.run.columns for r in results)
    notes = plot_curves([r.run for r in results if not r.job.changes], metric, args.out / "compare.png", costs)
    if sweeps:
        notes += plot_curves([r.run for r in results if r.job.changes], metric, args.out / "compare-sweep.png")
    text = markdown(args, results, sweeps, threshold, notes)
    (args.out / "compare.md").write_text(text)
    write_csv(args.out / "compare.csv", results)
    return text
