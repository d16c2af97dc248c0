"""Real pixel environments from the command line: Atari through ale-py (AtariPreprocessing and a 4-frame
stack, the ALE/Pong-v5 preset's default wrappers) and MiniGrid's image observation (ImgObsWrapper)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import require

TRPO = [sys.executable, "-m", "trpo"]


def run(*args: str | Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TRPO, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_atari_pong_trains_and_evaluates_from_the_cli(tmp_path: Path) -> None:
    """A smoke run of a few hundred steps: the preset's wrappers are applied and recorded, frames are
    stored as uint8, the Nature CNN updates, and `trpo eval` rebuilds the wrapped env from config.yaml."""
    require("ale_py", "atari")
    run_dir = tmp_path / "pong"
    done = run("train", "ALE/Pong-v5", "--total-steps", "256", "--n-envs", "2", "--n-steps", "128",
               "--eval-episodes", "0", "--run-dir", run_dir, "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert [next(iter(w)) if isinstance(w, dict) else w for w in config["env_wrappers"]] == [
        "gymnasium.wrappers:AtariPreprocessing",
        "gymnasium.wrappers:FrameStackObservation",
    ]
    rows = (run_dir / "progress.csv").read_text().splitlines()
    assert len(rows) == 2  # header + one update of 2 x 128 steps
    evaluated = run("eval", run_dir, "--episodes", "1", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["episodes"] == 1 and -21 <= result["mean_return"] <= 21


def test_minigrid_trains_with_its_image_wrapper(tmp_path: Path) -> None:
    require("minigrid", "minigrid")
    run_dir = tmp_path / "grid"
    done = run("train", "MiniGrid-Empty-8x8-v0", "--total-steps", "512", "--n-envs", "2", "--n-steps", "128",
               "--eval-episodes", "1", "--run-dir", run_dir, "--quiet", "--json-lines")  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env_wrappers"] == ["minigrid.wrappers:ImgObsWrapper"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0.0 <= summary["mean_return"] <= 1.0


def test_minigrid_without_its_wrapper_is_one_clear_line(tmp_path: Path) -> None:
    require("minigrid", "minigrid")
    done = run("train", "MiniGrid-Empty-8x8-v0", "--no-preset", "--total-steps", "128",
               "--run-dir", tmp_path / "r", "--quiet")  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "ImgObsWrapper" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_minigrid_empty_5x5_is_learned_from_pixels(tmp_path: Path) -> None:
    """The 5x5 room (same wrapper) from the 7x7x3 view: the training episodes' mean return rises from ~0.34 (the
    first update, a near-random policy) to over 0.6 (0.67 was seen at 15k steps) within 50k steps."""
    require("minigrid", "minigrid")
    run_dir = tmp_path / "grid5"
    done = run("train", "MiniGrid-Empty-5x5-v0", "--wrapper", "minigrid.wrappers:ImgObsWrapper",
               "--total-steps", "50000", "--n-envs", "8", "--n-steps", "128", "--no-normalize-reward",
               "--run-dir", run_dir, "--quiet", timeout=3000)  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = (run_dir / "progress.csv").read_text().splitlines()
    header, final = last[0].split(","), last[-1].split(",")
    assert float(final[header.index("rollout/ep_return_mean")]) > 0.6
