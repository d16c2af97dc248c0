"""`trpo plot RUN_DIR...`: learning curves over seeds, or one run's diagnostics."""

from __future__ import annotations

from trpo.cli.parsing import parse


def run(argv: list[str]) -> int:
    from trpo.tools.plot import PlotArgs, plot

    out, notes = plot(parse(PlotArgs, argv, "trpo plot"))
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out}")
    return 0
