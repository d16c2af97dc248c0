"""Process-level robustness: signals, SIGKILL at random moments, resume from the command line."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TRAIN = [sys.executable, "-m", "trpo", "train"]
# Small updates so a run has many of them; a checkpoint after every update.
ARGS = ["--n-envs", "2", "--n-steps", "64", "--checkpoint-every", "1", "--eval-episodes", "0", "--quiet"]


def updates_in(run_dir: Path) -> list[int]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [int(float(row["time/updates"])) for row in csv.DictReader(f)]


def rows_written(run_dir: Path) -> int:
    """Complete data lines of progress.csv while a trainer may be writing the next one."""
    path = run_dir / "progress.csv"
    if not path.exists():
        return 0
    return max(0, path.read_bytes().count(b"\n") - 1)


def wait_for_updates(run_dir: Path, n: int, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows_written(run_dir) >= n:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} updates within {timeout} s")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_prints_resume_command(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [*TRAIN, "CartPole-v1", "--run-dir", str(run_dir), "--total-steps", "1000000", *ARGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_updates(run_dir, 3, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"trpo train --resume {run_dir}" in stderr
    done = updates_in(run_dir)
    assert done == list(range(1, len(done) + 1))
    from trpo import TRPO

    assert TRPO.load(run_dir).num_updates == done[-1]  # the checkpoint holds the last logged update


def test_sigkill_at_random_moments_then_resume_completes_with_every_update_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    n_updates = 120
    total = n_updates * 128
    rng = random.Random(0)
    # checkpoints every 3 updates: a kill usually leaves logged rows past the checkpoint, to be dropped
    args = [a if a != "1" else "3" for a in ARGS]
    command = [*TRAIN, "CartPole-v1", "--run-dir", str(run_dir), "--total-steps", str(total), *args]
    dropped = 0
    for _kill in range(4):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # kill at a random instant: after a random number of new updates, plus a fraction of one
        logged = rows_written(run_dir)
        wait_for_updates(run_dir, logged + rng.randint(2, 12), process)
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
        from trpo import TRPO

        dropped += len(updates_in(run_dir)) - TRPO.load(run_dir).num_updates
        command = [*TRAIN, "--resume", str(run_dir), "--quiet"]
    from trpo import TRPO

    resumed_at = TRPO.load(run_dir).num_steps
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    # the speed of the last invocation counts only the steps it took
    assert summary["steps_per_s"] * summary["wall_time_s"] == pytest.approx(total - resumed_at, rel=1e-6)
    assert updates_in(run_dir) == list(range(1, n_updates + 1))
    assert dropped > 0  # the scenario the test is for did happen
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    logged = [int(e.value) for e in events.Scalars("time/updates")]
    assert logged == list(range(1, n_updates + 1))  # TensorBoard too: every update once, in order
    from trpo import TRPO

    assert TRPO.load(run_dir).num_steps == total
