"""`trpo tune ENV_ID`: hyperparameter search with Optuna (TPE sampling, median pruning).

Each trial trains `--seeds-per-trial` learners (one per seed, one after another) for `--steps-per-trial`
steps each with a configuration drawn from the search space (`SEARCH_SPACE`: the config fields worth
tuning, each with its range) on top of the env's preset (or `--no-preset` defaults, then `--config`). It
evaluates deterministically every `--eval-every` updates; a trial whose evaluation falls below the median
of earlier trials at the same step is pruned (seed i's steps count from i * steps-per-trial, so each seed
is compared with the same seed index of the other trials). The objective is the mean over the trial's
seeds of the final deterministic evaluation (`--eval-episodes` episodes, raw rewards): one seed's return
is a noisy objective, and the best of many one-seed trials is mostly the luckiest seed.

The study lives in `--storage` (default: an SQLite file OUT/study.db), so `--workers K` processes share
it and running the same command again continues the study. Written to OUT: best.yaml (the best
configuration, which `trpo train ENV_ID --config OUT/best.yaml` reads), trials.csv, tune.md and
tune.png (objective per trial and the best so far).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import multiprocessing
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro
import yaml

from trpo.config.presets import preset_config
from trpo.config.schema import TRPOConfig, load_yaml_config
from trpo.errors import ConfigError, TrainingStopped, UserError
from trpo.run.callbacks import EVAL_RETURN, Callback
from trpo.sampling.env_spec import EnvSpec, command_spec

if TYPE_CHECKING:
    import optuna

    from trpo.algos.learner import Learner


@dataclasses.dataclass(frozen=True)
class Range:
    """A config field's search range: floats or ints between low and high (log-uniform if `log`), or
    one of `choices`."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.choices:
            picked = trial.suggest_categorical(name, [_choice_key(c) for c in self.choices])
            return next(c for c in self.choices if _choice_key(c) == picked)
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


def _choice_key(choice: Any) -> Any:
    """Optuna stores categorical choices as plain values: tuples (layer sizes) as '64x64'."""
    return "x".join(map(str, choice)) if isinstance(choice, tuple) else choice


SEARCH_SPACE: dict[str, Range] = {
    "max_kl": Range(1e-3, 0.1, log=True),
    "cg_damping": Range(1e-3, 1.0, log=True),
    "gamma": Range(choices=(0.9, 0.95, 0.98, 0.99, 0.995, 0.999)),
    "gae_lambda": Range(choices=(0.8, 0.9, 0.92, 0.95, 0.98, 1.0)),
    "vf_epochs": Range(1, 20, integer=True),
    "vf_lr": Range(1e-4, 3e-3, log=True),
    "hidden_sizes": Range(choices=((64, 64), (128, 128), (256, 256))),
    "n_envs": Range(choices=(2, 4, 8, 16)),
    "n_steps": Range(choices=(64, 128, 256, 512, 1024)),
}
"""The fields `trpo tune` searches by default, with their ranges (δ, damping, γ, λ, critic epochs and
learning rate, network size, batch shape)."""


@dataclasses.dataclass(frozen=True)
class TuneArgs:
    """Search hyperparameters for ENV_ID with Optuna (TPE sampling, median pruning on periodic
    evaluation); the study is stored and resumes when the command is run again."""

    env_id: Annotated[tyro.conf.Positional[str], tyro.conf.arg(metavar="ENV_ID")]
    """Gymnasium environment id, e.g. Pendulum-v1 (MODULE:ENV_ID imports MODULE first)."""
    env_kwargs: Annotated[str | None, tyro.conf.arg(metavar="MAPPING", help_behavior_hint="")] = None
    """Keyword arguments of the environment, a JSON or YAML mapping (as `trpo train --env-kwargs`)."""
    wrapper: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="MODULE:CLASS")] = ()
    """Wrapper around every environment, MODULE:CLASS or MODULE:CLASS={"kwarg": value} (as `trpo train --wrapper`)."""
    trials: int = 20
    """Trials to run in this invocation (added to those the study already holds)."""
    steps_per_trial: int = 100_000
    """Environment steps each trial trains (per seed)."""
    seeds_per_trial: int = 1
    """Seeds each trial trains, one after another; the objective is the mean of their final returns."""
    workers: int = 1
    """Trials in parallel (processes sharing the study's storage)."""
    storage: str = ""
    """Optuna storage URL (default: sqlite:///OUT/study.db); the study continues from it."""
    study_name: str = ""
    """Study name in the storage (default: trpo-<env id>)."""
    params: tuple[str, ...] = ()
    """Config fields to search (default: all of the search space: max_kl, cg_damping, gamma, gae_lambda,
    vf_epochs, vf_lr, hidden_sizes, n_envs, n_steps)."""
    config: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """YAML file of config fields applied on top of the preset before the search."""
    preset: bool = True
    """Start from the environment's preset (--no-preset: TRPOConfig's defaults)."""
    eval_every: int = 10
    """Updates between the periodic evaluations that pruning reads."""
    eval_episodes: int = 5
    """Episodes of each periodic and of the final evaluation."""
    pruning: bool = True
    """Prune trials below the median of earlier trials at the same step (--no-pruning: run every trial out)."""
    seed: int = 0
    """Seed of the sampler (trial k of this invocation trains with seed + k)."""
    out: Path = Path("runs/tune")
    """Output directory: study.db, best.yaml, trials.csv, tune.md, tune.png."""


class PruneOnEvaluation(Callback):
    """Reports each periodic evaluation to the trial and stops training when Optuna prunes it."""

    def __init__(self, trial: optuna.Trial, enabled: bool = True, step_offset: int = 0) -> None:
        """`step_offset`: added to the learner's steps in each report (the trial's earlier seeds' steps)."""
        self.trial = trial
        self.enabled = enabled
        self.step_offset = step_offset
        self.pruned = False

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        value = stats.get(EVAL_RETURN, math.nan)
        if not math.isfinite(value):
            return None
        self.trial.report(value, step=self.step_offset + agent.num_steps)
        if self.enabled and self.trial.should_prune():
            self.pruned = True
            return False
        return None

    def stop_reason(self) -> str:
        return f"pruned by Optuna (trial {self.trial.number})"


def base_config(args: TuneArgs) -> TRPOConfig:
    """The configuration every trial starts from: preset (or defaults), then --config."""
    base = preset_config(EnvSpec(args.env_id).registered_id)[0] if args.preset else TRPOConfig()
    if args.config is not None:
        base = load_yaml_config(args.config, base=base)
    return base.replace(
        total_steps=args.steps_per_trial, eval_every=args.eval_every, eval_every_episodes=args.eval_episodes,
        eval_episodes=args.eval_episodes, checkpoint_every=0,
    )  # fmt: skip


def search_space(params: Sequence[str]) -> dict[str, Range]:
    unknown = [p for p in params if p not in SEARCH_SPACE]
    if unknown:
        raise ConfigError(f"--params {', '.join(unknown)}: not in the search space ({', '.join(SEARCH_SPACE)})")
    return {p: SEARCH_SPACE[p] for p in params} if params else dict(SEARCH_SPACE)


def trial_config(trial: optuna.Trial, base: TRPOConfig, space: Mapping[str, Range], seed: int) -> TRPOConfig:
    """`base` with one value drawn for each field of `space` (validated like any config)."""
    changes = {name: r.suggest(trial, name) for name, r in space.items()}
    return base.replace(**changes, seed=seed).validate()


def trial_seeds(args: TuneArgs, trial_number: int) -> list[int]:
    """The run seeds of one trial: seed + number * seeds-per-trial + i (a study's trials never share one)."""
    first = args.seed + trial_number * args.seeds_per_trial
    return list(range(first, first + args.seeds_per_trial))


def objective(args: TuneArgs, trial: optuna.Trial) -> float:
    """Train one trial's learners, one per seed; the mean of their final deterministic evaluations (a pruned
    trial raises TrialPruned). Each seed's final return is kept in the trial's user attribute seed_returns."""
    import optuna

    from trpo.algos.learner import make_agent
    from trpo.run.evaluation import evaluate

    space, base = search_space(args.params), base_config(args)
    spec = command_spec(args.env_id, args.config, args.env_kwargs, args.wrapper, preset=args.preset)
    returns: list[float] = []
    for i, seed in enumerate(trial_seeds(args, trial.number)):
        config = trial_config(trial, base, space, seed)
        pruner = PruneOnEvaluation(trial, enabled=args.pruning, step_offset=i * args.steps_per_trial)
        agent = make_agent(spec, config)
        try:
            agent.learn(callback=pruner)
        finally:
            agent.close()
        if pruner.pruned:
            raise optuna.TrialPruned(agent.stop_reason)
        returns.append(float(evaluate(agent, episodes=args.eval_episodes)["mean_return"]))  # type: ignore[arg-type]
        trial.set_user_attr("seed_returns", returns)
    return sum(returns) / len(returns)


def open_study(args: TuneArgs, load_only: bool = False, worker: int = 0) -> optuna.Study:
    """The study in the storage (created if new). Each worker's sampler gets its own seed, offset by the
    trials the study already holds, so that parallel workers and later invocations draw new points."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = args.study_name or f"trpo-{args.env_id}"
    storage = args.storage or f"sqlite:///{args.out / 'study.db'}"
    if load_only:
        return optuna.load_study(study_name=name, storage=storage)
    try:
        held = len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # no such study yet
        held = 0
    return optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=args.seed + 7919 * worker + held),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )  # fmt: skip


def run_trials(args: TuneArgs, n_trials: int, worker: int = 0) -> None:
    """One process's share of the trials (a trial whose training stops or fails is recorded as failed)."""
    study = open_study(args, worker=worker)
    study.optimize(lambda t: objective(args, t), n_trials=n_trials, catch=(TrainingStopped, UserError))


def tune(args: TuneArgs) -> str:
    """Run the search, write OUT's files, and return the table of trials."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise UserError("trpo tune needs Optuna: pip install 'trpo[tune]'") from None
    for name, value in (
        ("--trials", args.trials),
        ("--workers", args.workers),
        ("--steps-per-trial", args.steps_per_trial),
        ("--seeds-per-trial", args.seeds_per_trial),
    ):
        if value < 1:
            raise UserError(f"{name} must be >= 1 (got {value})")
    base = base_config(args).validate()
    search_space(args.params)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; choose a directory")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        open_study(args)  # created once, before the workers open it
    except Exception as exc:  # Optuna and SQLAlchemy raise many kinds for a storage they cannot open
        storage = args.storage or f"sqlite:///{args.out / 'study.db'}"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"--storage {storage}: cannot open the study ({first})") from None
    shares = [args.trials // args.workers + (i < args.trials % args.workers) for i in range(args.workers)]
    if args.workers == 1:
        run_trials(args, args.trials)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=run_trials, args=(args, n, i)) for i, n in enumerate(shares) if n > 0]
        for p in processes:
            p.start()
        for p in processes:
            p.join()
    return report(args, open_study(args, load_only=True), base)


def report(args: TuneArgs, study: optuna.Study, base: TRPOConfig) -> str:
    """best.yaml, trials.csv, tune.md and tune.png from the study; the Markdown table."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    names = list(search_space(args.params))
    on_seeds = f" on {args.seeds_per_trial} seeds" if args.seeds_per_trial > 1 else ""
    with open(args.out / "trials.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "state", "value", "seed_returns", "last_step", *names])
        for t in trials:
            per_seed = " ".join(f"{v:.2f}" for v in t.user_attrs.get("seed_returns", []))
            writer.writerow([t.number, t.state.name, t.value, per_seed, t.last_step, *(t.params.get(n) for n in names)])
    lines = [
        f"# trpo tune {args.env_id}: {len(trials)} trials ({len(done)} complete, "
        f"{sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)} pruned), "
        f"{args.steps_per_trial:,} steps each{on_seeds}",
        "",
        "| trial | state | final return | per seed | " + " | ".join(names) + " |",
        "|---" * (4 + len(names)) + "|",
    ]

    def rank(t: optuna.trial.FrozenTrial) -> float:
        return -t.value if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None else math.inf

    for t in sorted(trials, key=rank):
        value = f"{t.value:.1f}" if t.value is not None else "–"
        if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values:
            value = f"(last evaluation {t.intermediate_values[max(t.intermediate_values)]:.1f})"
        per_seed = ", ".join(f"{v:.1f}" for v in t.user_attrs.get("seed_returns", []))
        lines.append(
            f"| {t.number} | {t.state.name.lower()} | {value} | {per_seed} | "
            + " | ".join(str(t.params.get(n, "")) for n in names)
            + " |"
        )
    if done:
        best = study.best_trial
        write_best(args, best, base)
        command = train_command_of(args)
        lines += ["", f"best: trial {best.number}, {_final(args, best)}; `{command}`"]
    (args.out / "tune.md").write_text("\n".join(lines) + "\n")
    _plot(trials, args.out / "tune.png", args.env_id, args.seeds_per_trial)
    return "\n".join(lines) + "\n"


def train_command_of(args: TuneArgs) -> str:
    """The `trpo train` command that runs the best configuration as the study's trials started."""
    flags = [] if args.preset else ["--no-preset"]
    if args.config is not None:
        flags += ["--config", str(args.config)]
    env = command_spec(args.env_id, args.config, args.env_kwargs, args.wrapper, preset=args.preset).flags()
    return shlex.join(["trpo", "train", args.env_id, *env, *flags, "--config", str(args.out / "best.yaml")])


def write_best(args: TuneArgs, best: optuna.trial.FrozenTrial, base: TRPOConfig) -> None:
    """OUT/best.yaml: the best trial's values of the searched fields (a file `--config` reads; it applies
    on top of what the trials started from: the preset or --no-preset, then the study's --config)."""
    space = search_space(args.params)
    values = {}
    for name, value in best.params.items():
        if name in space:
            chosen = next((c for c in space[name].choices if _choice_key(c) == value), value)
            values[name] = list(chosen) if isinstance(chosen, tuple) else chosen
    base.replace(**values).validate()  # what the trial trained with
    header = (
        f"# trpo tune {args.env_id}: trial {best.number}, {_final(args, best)} after "
        f"{args.steps_per_trial:,} steps\n# {train_command_of(args)}\n"
    )
    (args.out / "best.yaml").write_text(header + yaml.safe_dump(values, sort_keys=False))


def _final(args: TuneArgs, trial: optuna.trial.FrozenTrial) -> str:
    """'final return R', or with several seeds 'mean final return R over N seeds (r1, r2, ...)'."""
    per_seed = trial.user_attrs.get("seed_returns", [])
    if args.seeds_per_trial == 1 or not per_seed:
        return f"final return {trial.value:.2f}"
    listed = ", ".join(f"{v:.2f}" for v in per_seed)
    return f"mean final return {trial.value:.2f} over {len(per_seed)} seeds ({listed})"


def _plot(trials: Sequence[optuna.trial.FrozenTrial], out: Path, env_id: str, seeds: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    numbers = [t.number for t in complete]
    values = [float(t.value or 0.0) for t in complete]
    label = "final return" if seeds == 1 else f"mean final return over {seeds} seeds"
    ax.scatter(numbers, values, label=f"{label} (complete trials)", s=18)
    best, running = [], -math.inf
    for v in values:
        running = max(running, v)
        best.append(running)
    ax.step(numbers, best, where="post", color="C1", label="best so far")
    pruned = [t for t in trials if t.state.name == "PRUNED" and t.intermediate_values]
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   marker="x", color="grey", label="pruned (last evaluation)")  # fmt: skip
    ax.set_xlabel("trial")
    ax.set_ylabel("return")
    ax.set_title(f"trpo tune {env_id}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
