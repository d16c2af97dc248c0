"""The returns suite runs end to end on a tiny budget and writes its table, CSV and plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_returns_suite_on_a_tiny_budget(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "returns.py"), "--envs", "CartPole-v1", "--seeds", "0", "1",
        "--steps", "2048", "--out", str(tmp_path), "--", "--checkpoint-every", "0", "--n-envs", "4",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "results.md").read_text()
    assert "| CartPole-v1 | 2,048 | 2 |" in table and "--n-envs 4" in table
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["0", "1"]
    for row in rows:  # the table reports what each run measured (its summary.json), not something else
        summary = json.loads((tmp_path / "CartPole-v1" / f"seed-{row['seed']}" / "summary.json").read_text())
        assert float(row["final_return"]) == pytest.approx(summary["mean_return"])
    assert rows[0]["final_return"] != rows[1]["final_return"]  # two seeds, two runs
    png = (tmp_path / "CartPole-v1.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_returns_suite_reuse_keeps_identical_finished_runs(tmp_path: Path) -> None:
    def suite(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, str(ROOT / "benchmarks" / "returns.py"), "--envs", "CartPole-v1", "--seeds", "0",
            "--steps", "1024", "--out", str(tmp_path), "--reuse", "--", "--checkpoint-every", "0", *extra,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert suite().returncode == 0
    summary = tmp_path / "CartPole-v1" / "seed-0" / "summary.json"
    first = summary.stat().st_mtime_ns
    assert suite().returncode == 0
    assert summary.stat().st_mtime_ns == first  # identical command: the finished run is read, not retrained
    assert suite("--n-envs", "4").returncode == 0
    assert summary.stat().st_mtime_ns != first  # different flags: trained again
