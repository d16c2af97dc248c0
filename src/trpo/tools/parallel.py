"""Run `trpo train` invocations as separate processes, a few at a time (compare, benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

Finished = Callable[[int, subprocess.CompletedProcess[str], float], None]
"""Called as each command ends: (its index in `commands`, its result, its wall time in seconds)."""


def train_command(env_id: str, run_dir: Path, flags: Sequence[str] = ()) -> list[str]:
    """`python -m trpo train ENV_ID --run-dir RUN_DIR --force --quiet FLAGS...` with this interpreter."""
    return [sys.executable, "-m", "trpo", "train", env_id, "--run-dir", str(run_dir), "--force", "--quiet", *flags]


def default_workers() -> int:
    """One run per CPU the process may use (each `trpo train` uses one torch thread by default)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _timed(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    return result, time.perf_counter() - start


def run_all(
    commands: Sequence[list[str]], workers: int, on_done: Finished | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run every command (at most `workers` at once); results in the order of `commands`. `on_done`
    is called in this thread as each one ends, in the order they end."""
    results: list[subprocess.CompletedProcess[str] | None] = [None] * len(commands)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(_timed, command): i for i, command in enumerate(commands)}
        for future in as_completed(futures):
            index = futures[future]
            result, seconds = future.result()
            results[index] = result
            if on_done is not None:
                on_done(index, result, seconds)
    return [r for r in results if r is not None]
