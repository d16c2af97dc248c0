"""`trpo export RUN_DIR`: a standalone ONNX policy, checked against predict."""

from __future__ import annotations

import sys

from trpo.cli.parsing import parse
from trpo.errors import UserError
from trpo.run.run_dir import RunDir, check_output


def run(argv: list[str]) -> int:
    """`trpo export RUN_DIR --format onnx [--out FILE]`: export, verify on random observations, report."""
    from trpo.algos.learner import load
    from trpo.tools.export import ExportArgs, ExportCheckFailed, export_checked, require_onnx

    args = parse(ExportArgs, argv, "trpo export")
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1 (got {args.samples})")
    require_onnx()
    out = args.out if args.out is not None else RunDir(args.run_dir).policy
    check_output(out, args.force)  # never a run's own file; an existing file only with --force
    agent = load(args.run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        diff = export_checked(agent, out, args.samples)
    except ExportCheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {out}: obs {list(agent.observation_space.shape or ())} -> action ({agent.action_space}); "
        f"onnxruntime matches predict() on {args.samples} random observations (max abs diff {diff:.2g})"
    )
    return 0
