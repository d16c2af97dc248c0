"""The `trpo` command: dispatch to one module per command (`trpo.cli.train`, `.evaluate`, `.plot`, `.record`,
`.export`, `.compare`, `.tune`), each with `run(argv) -> exit status`. A user error is one line and exit 2."""

from __future__ import annotations

import errno
import importlib
import signal
import sys

from trpo.errors import Interrupted, TrainingStopped, UserError

COMMANDS = {
    "train": "train a policy on a Gymnasium environment and write a run directory",
    "eval": "evaluate the policy of a run directory",
    "plot": "plot learning curves of runs (mean and spread over seeds) or one run's diagnostics",
    "record": "render the policy of a run directory to an MP4 video",
    "export": "export the policy of a run directory as a standalone ONNX model",
    "compare": "train TRPO, NPG and PPO over seeds on one environment and tabulate the measured claims",
    "tune": "search hyperparameters with Optuna (TPE, pruning on periodic evaluation); the study resumes",
}
FILE_SYSTEM_ERRORS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
    errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.EEXIST,
})  # fmt: skip
"""OSErrors that are the machine's answer to what the user asked (a full disk, a read-only or wrong path):
one line and exit 2, like any other user error."""
MODULES = {"eval": "evaluate"}
"""The module of a command whose name is not its module's."""


def usage() -> str:
    lines = ["usage: trpo COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += ["", "`trpo COMMAND --help` lists the command's flags."]
    return "\n".join(lines)


LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
"""The characters str.splitlines breaks a line at."""


def one_line(message: str) -> str:
    """`message` on one line: each line break in it (a key or a path read from a file can hold one) written as its
    escape, e.g. \\r, so an error stays the one line the CLI promises."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if ch in LINE_BREAKS else ch for ch in message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"trpo.cli.{MODULES.get(command, command)}")
        return int(module.run(rest))
    except UserError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in FILE_SYSTEM_ERRORS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        message = one_line(f"{where}{exc.strerror or exc}")
        print(f"error: {message} (the file system refused a read or write)", file=sys.stderr)
        return 2
    except TrainingStopped as exc:
        print(f"error: training stopped: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        print(f"{name}: stopped at step {exc.steps:,}, checkpoint written", file=sys.stderr)
        from trpo.cli.train import current_run_dir

        if current_run_dir is not None:
            print(f"resume with: trpo train --resume {current_run_dir}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
