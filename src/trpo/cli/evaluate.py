"""`trpo eval RUN_DIR`: the policy of a run on fresh episodes, raw rewards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import tyro

from trpo.cli.parsing import parse, with_env_flags
from trpo.errors import UserError
from trpo.sampling.env_spec import EnvFlags


@dataclasses.dataclass(frozen=True)
class EvalArgs:
    """Evaluate the trained policy of a run directory on fresh episodes (raw, unscaled rewards)."""

    run_dir: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="RUN_DIR")]
    """Run directory written by `trpo train` (or a saved model directory)."""
    episodes: int = 10
    """Number of episodes."""
    stochastic: bool = False
    """Sample actions instead of taking the most likely one."""
    json: bool = False
    """Print one JSON object instead of a sentence."""
    seed: Annotated[int | None, tyro.conf.arg(metavar="INT", help_behavior_hint="")] = None
    """Seed of the first episode; the next are seed + 1, ... (default: the run's own evaluation seeds, different for
    every run seed: trpo.run.evaluation.episode_seeds)."""
    env: Annotated[EnvFlags, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=EnvFlags)
    """The environment (default: the one the run recorded)."""


def run(argv: list[str]) -> int:
    from trpo.algos.learner import load
    from trpo.run.evaluation import evaluate

    args = parse(EvalArgs, argv, "trpo eval")
    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1 (got {args.episodes})")
    agent = load(args.run_dir)
    with_env_flags(agent, args.env)
    result = evaluate(agent, episodes=args.episodes, deterministic=not args.stochastic, seed=args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"mean return {result['mean_return']:.2f} ± {result['std_return']:.2f} over {result['episodes']} episodes"
        )
    return 0
