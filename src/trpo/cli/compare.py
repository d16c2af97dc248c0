"""`trpo compare ENV`: TRPO, NPG and PPO over seeds, with the measured claims."""

from __future__ import annotations

from trpo.cli.parsing import parse


def run(argv: list[str]) -> int:
    from trpo.tools.compare import CompareArgs, compare

    args = parse(CompareArgs, argv, "trpo compare")
    print(compare(args), end="")
    print(f"wrote {args.out / 'compare.md'}, compare.csv and compare.png")
    return 0
