"""`trpo record RUN_DIR`: an MP4 video of the run's policy."""

from __future__ import annotations

from trpo.cli.parsing import parse, with_env_flags
from trpo.run.run_dir import RunDir


def run(argv: list[str]) -> int:
    """`trpo record RUN_DIR [--out FILE.mp4] [--episodes N] [--seed S] [--stochastic] [--fps F]`."""
    from trpo.algos.learner import load
    from trpo.tools.record import RecordArgs, record, require_imageio

    args = parse(RecordArgs, argv, "trpo record")
    require_imageio()
    out = args.out if args.out is not None else RunDir(args.run_dir).video
    agent = load(args.run_dir)
    with_env_flags(agent, args.env)
    result = record(
        agent, out, args.episodes, args.seed, not args.stochastic, args.fps,
        camera=args.camera, width=args.width, height=args.height, force=args.force,
    )  # fmt: skip
    returns = ", ".join(f"{r:.1f}" for r in result.returns)
    print(
        f"wrote {result.path}: {len(result.returns)} episode(s), {result.frames} frames at {result.fps} fps "
        f"({result.frames / result.fps:.1f} s); returns {returns}"
    )
    return 0
