"""Run `trpo train` invocations as separate processes, a few at a time (compare, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def train_command(env_id: str, run_dir: Path, flags: Sequence[str] = ()) -> list[str]:
    """`python -m trpo.cli train ENV_ID --run-dir RUN_DIR --force --quiet FLAGS...` with this interpreter."""
    return [sys.executable, "-m", "trpo.cli", "train", env_id, "--run-dir", str(run_dir), "--force", "--quiet", *flags]


def default_workers() -> int:
    """One run per CPU the process may use (each `trpo train` uses one torch thread by default)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_all(commands: Sequence[list[str]], workers: int) -> list[subprocess.CompletedProcess[str]]:
    """Run every command (at most `workers` at once); results in the order of `commands`."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), commands))
