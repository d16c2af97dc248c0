"""`trpo train ENV_ID` and `trpo train --resume RUN_DIR`: flags from TRPOConfig, a run directory, a summary."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from trpo.cli.parsing import parse, with_env_flags
from trpo.config.presets import preset_config
from trpo.config.schema import TRPOConfig, load_yaml_config, load_yaml_env, save_yaml_config
from trpo.errors import UserError
from trpo.files import atomic_write_text
from trpo.run.callbacks import Callback, SaveBest
from trpo.run.checkpoint import resolve_checkpoint_dir
from trpo.run.resources import check_fits
from trpo.run.run_dir import RunDir
from trpo.sampling.env_spec import EnvFlags, EnvSpec, command_spec

if TYPE_CHECKING:
    from trpo.algos.learner import Learner

current_run_dir: Path | None = None
"""The run `trpo train` is writing (for the resume hint after an interrupt)."""


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """Train a policy with TRPO (or --algo npg|ppo|cpo|trpo-lag): `trpo train [OPTIONS] ENV_ID`, or continue a run with
    `trpo train --resume RUN_DIR`. The environment's preset for the algorithm applies first, then
    --config FILE, then flags."""

    env_id: Annotated[tyro.conf.Positional[str | None], tyro.conf.arg(metavar="ENV_ID", help_behavior_hint="")] = None
    """Gymnasium environment id, e.g. CartPole-v1 or HalfCheetah-v5; MODULE:ENV_ID imports MODULE first (as
    gymnasium.make does), e.g. my_envs:Grid-v0 (default: env_id of --config). With --resume: the
    environment instead of the run's (for a run whose environment could not be recorded)."""
    env_kwargs: Annotated[str | None, tyro.conf.arg(metavar="MAPPING", help_behavior_hint="")] = None
    """Keyword arguments of the environment, a JSON or YAML mapping, e.g. '{"g": 9.0}' (gymnasium.make's)."""
    wrapper: Annotated[tuple[str, ...], tyro.conf.UseAppendAction, tyro.conf.arg(metavar="MODULE:CLASS")] = ()
    """Wrapper around every environment, MODULE:CLASS or MODULE:CLASS={"kwarg": value}, e.g.
    gymnasium.wrappers:TimeLimit='{"max_episode_steps": 100}'; repeat for several, applied in order."""
    run_dir: Annotated[Path | None, tyro.conf.arg(metavar="DIR")] = None
    """Run directory (default: runs/<env>-<algo>-<seed>-<timestamp>)."""
    config: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """YAML file of config fields applied on top of the environment's preset."""
    preset: bool = True
    """Apply the environment's preset (--no-preset: TRPOConfig's defaults, then --config and flags)."""
    resume: Annotated[Path | None, tyro.conf.arg(metavar="RUN_DIR")] = None
    """Continue the run in this directory from its last checkpoint."""
    force: bool = False
    """Write into an existing --run-dir (its previous run files are replaced)."""
    quiet: bool = False
    """No progress bar or tables (alarms and the final result are still printed)."""
    table_every: int = 25
    """Print a table of the main diagnostics every N updates above the progress bar (0 = never)."""
    json_lines: bool = False
    """Print one JSON object per update (and alarms and the summary as JSON objects) instead of the bar."""
    zoo: Annotated[Path | None, tyro.conf.arg(metavar="FILE")] = None
    """RL-Zoo TRPO hyperparameter file (e.g. its trpo.yml): ENV_ID's entry, on sb3-contrib's defaults,
    replaces the preset; --config and flags apply on top. Keys with no trpo equivalent are refused."""
    save_best: bool = False
    """Keep the model of the best periodic evaluation (needs --eval-every N) in RUN_DIR/best."""
    stop_at_return: Annotated[float | None, tyro.conf.arg(metavar="FLOAT", help_behavior_hint="")] = None
    """Stop once a periodic evaluation's mean return reaches this (needs --eval-every N); checkpointed."""
    track: Literal["none", "wandb"] = "none"
    """Also log to Weights & Biases (pip install 'trpo[wandb]'; WANDB_MODE=offline works without network).
    A choice of this invocation: never stored in the run."""
    wandb_project: str = "trpo"
    """W&B project of --track wandb (the run is named after the run directory, grouped by its parent)."""
    trust_run_sampler: bool = False
    """With --resume: sample as the run recorded (its sampler, workers, worker_cpus and ray_address). Without
    it a run directory is data: the sampler fields come from this command line (default: sync)."""
    hp: Annotated[TRPOConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=TRPOConfig)
    """Hyperparameters."""


def _parse_train(argv: list[str]) -> tuple[TrainArgs, str | None, EnvSpec | None]:
    """Parse twice: first to learn the env id and --config, then with preset + file as defaults
    (so `trpo train ENV_ID --help` shows the defaults that will apply to ENV_ID)."""
    without_help = [a for a in argv if a not in ("-h", "--help")]
    if len(without_help) < len(argv):
        try:
            first = parse(TrainArgs, without_help, "trpo train")
        except UserError:
            first = None
        if first is None or first.env_id is None or first.resume is not None:
            parse(TrainArgs, argv, "trpo train")  # prints the plain help and exits
    first = parse(TrainArgs, without_help, "trpo train")
    if first.resume is not None:
        return first, None, None
    file_env = load_yaml_env(first.config) if first.config is not None else {}
    env_id = first.env_id or file_env.get("env_id")
    if env_id is None:
        raise UserError("trpo train needs an environment id, e.g. `trpo train CartPole-v1` (or --resume RUN_DIR)")
    algo = first.hp.algo
    if algo == "trpo" and first.config is not None:  # no --algo flag: the config file may name one
        algo = load_yaml_config(first.config).algo
    preset: str | None
    if first.zoo is not None:
        base, preset = _zoo_config(first.zoo, EnvSpec(str(env_id)).registered_id, algo)
    elif first.preset:
        base, preset = preset_config(EnvSpec(str(env_id)).registered_id, algo=algo)
    else:
        base, preset = TRPOConfig().replace(algo=algo), None
    if first.config is not None:
        base = load_yaml_config(first.config, base=base)
    default = dataclasses.replace(first, hp=base, wrapper=())  # --wrapper appends to the default
    args = parse(TrainArgs, argv, "trpo train", default=default)
    spec = command_spec(
        str(env_id), first.config, args.env_kwargs, args.wrapper, preset=first.preset and first.zoo is None
    )
    return args, preset, spec


def _zoo_config(path: Path, env_id: str, algo: str) -> tuple[TRPOConfig, str]:
    """The config of ENV_ID's entry in an RL-Zoo TRPO file (in place of the preset)."""
    from trpo.config.schema import config_from_dict
    from trpo.config.zoo import read_zoo_entry, zoo_fields

    if algo not in ("trpo", "npg"):
        raise UserError(f"--zoo reads RL-Zoo's TRPO entries; --algo {algo} takes other hyperparameters")
    fields = zoo_fields(read_zoo_entry(path, env_id), source=f"--zoo {path}: {env_id}")
    return config_from_dict(fields, base=TRPOConfig().replace(algo=algo), source=f"--zoo {path}"), f"RL-Zoo {path}"


def _callbacks(args: TrainArgs, config: TRPOConfig) -> list[Callback]:
    """The callbacks the invocation's flags ask for (checked before anything is written)."""
    from trpo.run.callbacks import StopAtReturn

    wanted = ["--save-best"] * args.save_best + ["--stop-at-return"] * (args.stop_at_return is not None)
    if wanted and config.eval_every < 1:
        raise UserError(f"{' and '.join(wanted)} need periodic evaluation: add --eval-every N (updates)")
    callbacks: list[Callback] = []
    if args.save_best:
        callbacks.append(SaveBest())
    if args.stop_at_return is not None:
        callbacks.append(StopAtReturn(args.stop_at_return))
    if args.track == "wandb":
        from trpo.run.tracking import WandbTracker

        callbacks.append(WandbTracker(project=args.wandb_project))
    return callbacks


def _prepare_run_dir(args: TrainArgs, env_id: str, algo: str, seed: int) -> tuple[Path, bool]:
    """The run directory and whether a previous run in it is to be replaced (--force); nothing is written."""
    if args.run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Path("runs") / f"{EnvSpec(env_id).registered_id.replace('/', '_')}-{algo}-{seed}-{stamp}", False
    run_dir = args.run_dir
    if run_dir.is_symlink() and not run_dir.exists():
        raise UserError(f"--run-dir {run_dir} is a dangling symbolic link; choose another --run-dir")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run-dir {run_dir} is a file; choose a directory path")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        is_run = RunDir(run_dir).is_run()
        if not args.force:
            what = "holds a previous run" if is_run else "exists and is not an empty directory"
            fix = f"continue it with `trpo train --resume {run_dir}`, " if is_run else ""
            raise UserError(f"--run-dir {run_dir} {what}; {fix}choose another --run-dir, or pass --force to replace it")
        RunDir(run_dir).check_links()
        if RunDir(run_dir).existing_run_files() and not is_run:
            reason = RunDir(run_dir).not_a_run_reason()
            raise UserError(
                f"--force replaces only a trpo run, and {run_dir} is not one ({reason}); nothing was deleted: "
                "choose another --run-dir"
            )
        return run_dir, True
    return run_dir, False


def make_run_dir(run_dir: Path) -> None:
    """Create the run directory, or say in one line why it cannot be (a read-only file system, a file on the path)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run directory {run_dir}: {exc.strerror or exc}") from None


RESUME_FIELDS = (
    "total_steps", "eval_every", "eval_every_episodes", "eval_episodes", "checkpoint_every",
    "eval_max_episode_steps", "sampler", "workers", "worker_cpus", "ray_address",
)  # fmt: skip
"""Config fields a flag may change when resuming (how long, how often to evaluate and checkpoint, where
to sample); every other field is the run's own, and a flag for it is refused."""
RESUME_OPTIONS = (
    "resume", "env_id", "env_kwargs", "wrapper", "quiet", "table_every", "json_lines", "save_best",
    "stop_at_return", "track", "wandb_project", "trust_run_sampler",
)  # fmt: skip
"""Options of this invocation that apply to a resumed run."""


def given_flags(argv: list[str]) -> list[tuple[str, str]]:
    """The flags typed on the command line, as (the flag, the field or option it sets)."""
    config_fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    options = {f.name for f in dataclasses.fields(TrainArgs)}
    flags = []
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        flag = token.split("=", 1)[0]
        name = flag[2:].replace("-", "_")
        if name.startswith("no_") and name[3:] in config_fields | options:
            name = name[3:]
        flags.append((flag, name))
    return flags


def resume_changes(args: TrainArgs, argv: list[str]) -> dict[str, object]:
    """The config changes the flags given with --resume ask for (RESUME_FIELDS); any flag that cannot apply
    to a resumed run is refused in one line (nothing is ignored silently)."""
    config_fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    changes: dict[str, object] = {}
    for flag, name in given_flags(argv):
        if name in RESUME_FIELDS:
            changes[name] = getattr(args.hp, name)
        elif name in config_fields:
            raise UserError(
                f"{flag} cannot change when resuming: the run keeps its own {name} (in its checkpoint); "
                f"start a new run with --run-dir to train with another {name}"
            )
        elif name not in RESUME_OPTIONS:
            raise UserError(f"{flag} does not apply to --resume (the run's config and directory are fixed); remove it")
    return changes


def run(argv: list[str]) -> int:
    from trpo.algos.learner import load, make_agent

    args, preset, spec = _parse_train(argv)
    with contextlib.ExitStack() as stack:  # the run directory's writer lock, once taken
        if args.resume is not None:
            run_dir = args.resume
            RunDir(run_dir).check_links()
            resolve_checkpoint_dir(run_dir)  # a directory without a checkpoint is refused before anything is written
            changes = resume_changes(args, argv)
            stack.enter_context(RunDir(run_dir).lock())  # before anything is read: no writer is mid-way
            agent = load(run_dir, trust_run_sampler=args.trust_run_sampler)
            with_env_flags(agent, EnvFlags(args.env_id, args.env_kwargs, args.wrapper))
            if agent.env_spec is None:
                agent.env_fn()  # says how to give the environment that could not be recorded
            if changes:
                agent.config = agent.config.replace(**changes).validate(unread="keep")
                check_fits(agent.config, agent.observation_space, agent.action_space)
                applied = ", ".join(f"{k}={v}" for k, v in changes.items())
                print(f"resume: applying {applied}", file=sys.stderr)
            config = agent.config
            callbacks = _callbacks(args, config)
            print(f"resuming {run_dir} at step {agent.num_steps:,} of {config.total_steps:,}", file=sys.stderr)
            env_id = agent.env_id or "?"
        else:
            assert spec is not None
            config = args.hp.validate()
            callbacks = _callbacks(args, config)
            agent = make_agent(spec, config)  # checks the env spec and its spaces before anything is written
            agent.start_sampler()  # failing environments, workers or Ray cluster: reported before the run dir exists
            env_id = spec.id
            run_dir, replace = _prepare_run_dir(args, env_id, config.algo, config.seed)
            make_run_dir(run_dir)
            stack.enter_context(RunDir(run_dir).lock())
            if replace:
                RunDir(run_dir).clear()
            defaults = "none (TRPOConfig defaults)" if args.preset else "none (--no-preset: TRPOConfig defaults)"
            print(f"algo: {config.algo}; preset: {preset or defaults}", file=sys.stderr)
            if spec.kwargs or spec.wrappers:  # the preset's, a config file's or the flags': what was made
                print(f"env: {spec.describe()}", file=sys.stderr)
            header = f"trpo train {env_id} --config config.yaml"
            save_yaml_config(config, RunDir(run_dir).config, header=header, env=spec.to_data())
        return _train(args, agent, config, callbacks, run_dir, env_id)


def _train(
    args: TrainArgs, agent: Learner, config: TRPOConfig, callbacks: list[Callback], run_dir: Path, env_id: str
) -> int:
    from trpo.run.evaluation import evaluate

    global current_run_dir
    current_run_dir = run_dir
    start, start_steps = time.perf_counter(), agent.num_steps
    try:
        agent.learn(
            until=config.total_steps,
            run_dir=run_dir,
            callback=callbacks,
            progress_bar=not (args.quiet or args.json_lines),
            table_every=0 if args.quiet else args.table_every,
            json_lines=args.json_lines,
        )
        wall = time.perf_counter() - start
    finally:
        agent.close()  # environments, the worker processes, and with sampler=ray the local Ray instance
    summary: dict[str, object] = {
        "env_id": env_id,
        "algo": agent.algo,
        "seed": config.seed,
        "total_steps": agent.num_steps,
        "updates": agent.num_updates,
        "wall_time_s": wall,  # of this invocation (a resumed run counts from its resume)
        "steps_per_s": (agent.num_steps - start_steps) / wall if wall > 0 else None,
    }
    if config.eval_episodes > 0:
        result = evaluate(agent, episodes=config.eval_episodes)
        summary.update(
            mean_return=result["mean_return"], std_return=result["std_return"], eval_episodes=result["episodes"]
        )
        if "mean_cost" in result:
            summary.update(mean_cost=result["mean_cost"], std_cost=result["std_cost"])
    summary["alarms"] = agent.alarms
    if agent.stop_reason:
        summary["stopped_by"] = agent.stop_reason
    for c in callbacks:
        if isinstance(c, SaveBest) and c.best_step >= 0:
            summary.update(best_return=c.best_return, best_step=c.best_step, best_model=str(c.path))
    atomic_write_text(RunDir(run_dir).summary, json.dumps(summary, indent=1) + "\n")
    for c in callbacks:
        finish = getattr(c, "finish", None)  # the W&B run gets the summary, then closes
        if finish is not None:
            finish({k: v for k, v in summary.items() if k != "alarms"})
    if args.json_lines:
        print(json.dumps({"summary": summary, "run_dir": str(run_dir)}))
        return 0
    if "mean_return" in summary:
        print(
            f"{env_id}: mean return {summary['mean_return']:.2f} ± {summary['std_return']:.2f} "
            f"over {summary['eval_episodes']} episodes"
            + (f", mean cost {summary['mean_cost']:.2f} ± {summary['std_cost']:.2f}" if "mean_cost" in summary else "")
        )
    if agent.alarms:
        names = ", ".join(f"{a['name']} (update {a['update']})" for a in agent.alarms)
        print(f"health alarms: {names}; details in {RunDir(run_dir).summary}", file=sys.stderr)
    print(f"run directory: {run_dir}")
    return 0
