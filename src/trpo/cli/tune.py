"""`trpo tune ENV`: Optuna search over declared config ranges; the study resumes."""

from __future__ import annotations

from trpo.cli.parsing import parse


def run(argv: list[str]) -> int:
    from trpo.tools.tune import TuneArgs, tune

    args = parse(TuneArgs, argv, "trpo tune")
    print(tune(args), end="")
    print(f"wrote {args.out / 'best.yaml'}, trials.csv, tune.md and tune.png")
    return 0
