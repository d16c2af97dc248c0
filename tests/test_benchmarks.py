"""The returns suite runs end to end on a tiny budget and writes its table, CSV and plots."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_returns_suite_on_a_tiny_budget(tmp_path: Path) -> None:
    command = [
        sys.executable, str(ROOT / "benchmarks" / "returns.py"), "--envs", "CartPole-v1", "--seeds", "0", "1",
        "--steps", "2048", "--out", str(tmp_path), "--eval-episodes", "3",
        "--", "--checkpoint-every", "0", "--n-envs", "4",
        "--sampler", "sync",  # the suite's mechanics, not the preset's worker process (its start-up is slow)
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "results.md").read_text()
    assert "| CartPole-v1 | 2,048 | 2 |" in table and "--n-envs 4" in table
    assert "final deterministic return (3 episodes)" in table
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["0", "1"]
    for row in rows:  # the table reports what each run measured (its summary.json), not something else
        summary = json.loads((tmp_path / "CartPole-v1" / f"seed-{row['seed']}" / "summary.json").read_text())
        assert float(row["final_return"]) == pytest.approx(summary["mean_return"])
        assert summary["eval_episodes"] == 3
    # two seeds, two runs (a deterministic CartPole evaluation can reach 500 on both, so compare training returns)
    assert rows[0]["last100_return"] != rows[1]["last100_return"]
    png = (tmp_path / "CartPole-v1.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_returns_suite_reuse_keeps_identical_finished_runs(tmp_path: Path) -> None:
    def suite(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, str(ROOT / "benchmarks" / "returns.py"), "--envs", "CartPole-v1", "--seeds", "0",
            "--steps", "1024", "--out", str(tmp_path), "--reuse", "--", "--checkpoint-every", "0", "--sampler", "sync",
            *extra,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    assert suite().returncode == 0
    summary = tmp_path / "CartPole-v1" / "seed-0" / "summary.json"
    first = summary.stat().st_mtime_ns
    assert suite().returncode == 0
    assert summary.stat().st_mtime_ns == first  # identical command: the finished run is read, not retrained
    assert suite("--n-envs", "4").returncode == 0
    assert summary.stat().st_mtime_ns != first  # different flags: trained again


def fake_missing(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment in which importing each of `modules` fails as if it were not installed."""
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    for name in modules:
        (fake / f"{name}.py").write_text('raise ImportError("not installed (test)")\n')
    paths = [str(fake), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.mark.parametrize(
    ("argv", "needs", "extra"),
    [
        (["throughput.py", "--envs", "CartPole-v1", "--steps", "100"], "sb3_contrib", "bench"),
        (["returns.py", "--envs", "Hopper-v5", "CartPole-v1", "--steps", "10"], "mujoco", "bench"),
        (["levers.py"], "mujoco", "bench"),
        (["micro.py"], "mujoco", "bench"),
        (["rollout_update.py"], "mujoco", "bench"),
        (["scaling.py"], "mujoco", "bench"),
        (["update_time.py", "--env", "HalfCheetah-v5"], "mujoco", "bench"),
        (["samplers.py", "throughput"], "ray, mujoco", "bench,ray"),
        (["planted_bugs.py", "--only", "eval-same-seed"], "hypothesis", "dev"),
        (["profile_update.py", "--env", "Hopper-v5"], "mujoco", "bench"),
    ],
)
def test_every_benchmark_checks_its_optional_dependencies_first(
    argv: list[str], needs: str, extra: str, tmp_path: Path
) -> None:
    assert {p.name for p in (ROOT / "benchmarks").glob("[!_]*.py")} <= {
        "throughput.py", "returns.py", "levers.py", "micro.py", "rollout_update.py", "scaling.py",
        "update_time.py", "samplers.py", "planted_bugs.py", "profile_update.py",
        "check_claims.py",  # no optional dependency: parsing only
        "same_result.py",  # no optional dependency: CartPole-v1 and Pendulum-v1 are classic control
        "cnn_speed.py",  # no optional dependency: a stand-in environment of random frames
        "pendulum_spin.py",  # no optional dependency: Pendulum-v1 is classic control
    }  # fmt: skip  # a new script joins this list
    env = fake_missing(tmp_path, "sb3_contrib", "mujoco", "ray", "hypothesis")
    command = [sys.executable, str(ROOT / "benchmarks" / argv[0]), *argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # nothing ran
    assert result.stderr == (
        f"error: benchmarks/{argv[0]} needs {needs}, which {'are' if ',' in needs else 'is'} not installed: "
        f'pip install -e ".[{extra}]"\n'
    )


def test_dependency_check_names_what_environments_need(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _deps

    assert _deps.env_modules(["CartPole-v1", "Hopper-v5", "LunarLander-v3", "NoSuchEnv-v0"]) == ["mujoco", "Box2D"]
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # importing it now fails
    assert _deps.missing(["json", "sb3_contrib", "sb3_contrib"]) == ["sb3_contrib"]
    assert _deps.install_hint(["ray", "Box2D"]) == 'pip install -e ".[bench,ray]"'
    with pytest.raises(SystemExit) as exc:
        _deps.require("benchmarks/throughput.py", ["sb3_contrib"])
    assert exc.value.code == 2


def test_training_without_mujoco_installed(tmp_path: Path) -> None:
    """A classic-control run checkpoints when gymnasium's MuJoCo module cannot be imported."""
    command = [sys.executable, "-m", "trpo", "train", "CartPole-v1", "--total-steps", "256", "--n-envs", "2",
               "--n-steps", "128", "--eval-episodes", "0", "--quiet", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=fake_missing(tmp_path, "mujoco"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "checkpoint" / "state.json").exists()


def test_every_planted_bug_still_applies_to_the_code() -> None:
    """benchmarks/planted_bugs.py edits lines of src/trpo: each must still be there exactly once, and each
    bug's tests must exist (running the bugs themselves is `make mutation`, outside CI)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import planted_bugs

    for bug in planted_bugs.BUGS:
        assert (ROOT / "src" / "trpo" / bug.file).read_text().count(bug.old) == 1, bug.name
        assert all((ROOT / test.split("::")[0]).exists() for test in bug.tests), bug.name
