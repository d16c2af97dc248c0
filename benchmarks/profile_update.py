"""Where one update's time goes in a `trpo train ENV` run: cProfile of `learn()`, summed per phase.

    python benchmarks/profile_update.py --env CartPole-v1 --steps 20480
    python benchmarks/profile_update.py --env CartPole-v1 --steps 20480 --set sampler=sync

The env's preset (with `--set KEY=VALUE` changes, values read as YAML) runs `--steps` environment steps after one
warm-up update (worker processes are started before); the table gives milliseconds per update of each
phase (cumulative time of the functions named, under cProfile, so every figure is inflated by the
profiler alike: compare the shares, not the absolute times) and their share of the learner's time.
With a worker sampler, "collect (wait)" is the time the learner waits for the workers' rollout; the
workers' own time is not in the learner's profile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import warnings

from _deps import require

warnings.filterwarnings("ignore")

PHASES: list[tuple[str, str, str]] = [
    # (label, file suffix, function name)
    ("learn (all)", "algos/learner.py", "learn"),
    ("collect (rollout, or waiting for the workers)", "", "collect"),
    ("  values, reward scaling, GAE", "sampling/rollout.py", "make_batch"),
    ("update", "algos/learner.py", "update"),
    ("  policy step", "", "policy_step"),
    ("    surrogate gradient", "algos/npg.py", "surrogate_gradient"),
    ("    conjugate gradient (Fisher products)", "core/trust_region.py", "conjugate_gradient"),
    ("    line search", "core/trust_region.py", "backtracking_line_search"),
    ("  critic fit", "core/value_fit.py", "fit_value"),
    ("  dead-unit diagnostics", "run/health.py", "dead_unit_fractions"),
]


def cumulative_seconds(stats: pstats.Stats, suffix: str, name: str) -> float:
    """The cumulative time of every function called `name` in a file ending with `suffix` (outermost calls)."""
    total = 0.0
    for (filename, _, function), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if function == name and filename.endswith(suffix) and "/trpo/" in filename:
            total += cumtime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config changes (YAML values)")
    args = parser.parse_args()
    require(__file__, env_ids=[args.env])
    import yaml

    from trpo import TRPO
    from trpo.config.presets import preset_config

    config = preset_config(args.env)[0]
    changes = dict(item.split("=", 1) for item in args.set)
    config = config.replace(**{key: yaml.safe_load(value) for key, value in changes.items()})
    agent = TRPO(args.env, config.replace(checkpoint_every=0), seed=0)
    agent.start_sampler()
    agent.learn(config.batch_size)  # warm-up
    updates_before = agent.num_updates
    profiler = cProfile.Profile()
    profiler.enable()
    agent.learn(args.steps)
    profiler.disable()
    agent.close()
    updates = agent.num_updates - updates_before
    stats = pstats.Stats(profiler)
    learner = cumulative_seconds(stats, "algos/learner.py", "learn")
    print(f"{args.env} ({config.sampler}, {config.batch_size} steps per update), {updates} updates under cProfile\n")
    print("| phase | ms per update | share of learn() |")
    print("|---|---|---|")
    for label, suffix, name in PHASES:
        seconds = cumulative_seconds(stats, suffix, name)
        print(f"| {label} | {seconds / updates * 1e3:.1f} | {seconds / learner:.0%} |")


if __name__ == "__main__":
    main()
