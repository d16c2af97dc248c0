"""`trpo plot` and the console modes of `trpo train` (JSON lines, tables)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from trpo.cli import main
from trpo.plotting import find_runs, mean_and_spread

TINY = ["--total-steps", "1024", "--n-envs", "2", "--n-steps", "128", "--eval-episodes", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two CartPole seeds and one Pendulum run under one directory."""
    root = tmp_path_factory.mktemp("runs")
    for env_id, seed in (("CartPole-v1", 0), ("CartPole-v1", 1), ("Pendulum-v1", 0)):
        argv = ["train", env_id, "--seed", str(seed), "--run-dir", str(root / f"{env_id}-{seed}"), "--quiet", *TINY]
        assert main(argv) == 0
    return root


def test_mean_and_spread_known_answer() -> None:
    x = np.array([0.0, 10.0])
    grid, mean, std, count = mean_and_spread([(x, x), (x, x + 2)], points=3)
    np.testing.assert_allclose(grid, [0, 5, 10])
    np.testing.assert_allclose(mean, [1, 6, 11])
    np.testing.assert_allclose(std, [1, 1, 1])
    assert count.tolist() == [2, 2, 2]
    # a shorter run only counts within its own range; NaN points (no episode yet) are skipped
    grid, mean, _, count = mean_and_spread([(x, x), (np.array([0.0, 5.0]), np.array([np.nan, 7.0]))], points=3)
    assert count.tolist() == [1, 2, 1]
    np.testing.assert_allclose(mean, [0, 6, 10])


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


def test_plot_groups_runs_by_environment(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(find_runs((runs,))) == 3
    out = tmp_path / "curves.png"
    assert main(["plot", str(runs), "--out", str(out)]) == 0
    wide = read_png(out)
    one = tmp_path / "one.png"
    assert main(["plot", str(runs / "CartPole-v1-0"), str(runs / "CartPole-v1-1"), "--out", str(one)]) == 0
    assert wide.shape[1] > read_png(one).shape[1]  # two environment panels against one
    assert f"wrote {out}" in capsys.readouterr().out


def test_plot_a_metric_and_the_diagnostics_of_one_run(runs: Path) -> None:
    run = runs / "Pendulum-v1-0"
    assert main(["plot", str(run), "--metric", "train/entropy"]) == 0
    read_png(run / "curves.png")
    assert main(["plot", str(run), "--diagnostics"]) == 0
    read_png(run / "diagnostics.png")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/run"], "is not a directory"),
        (["{empty}"], "holds no progress.csv"),
        (["{run}", "--metric", "train/nope"], "has no column 'train/nope'"),
        (["{root}", "--diagnostics"], "--diagnostics plots one run; 3 runs"),
        (["{run}", "--out", "{tmp}/plot.jpg"], "must end in .png"),
        ([], "needs at least one run directory"),
    ],
)
def test_plot_bad_input_is_one_line_and_exit_2(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    names = {"empty": tmp_path / "empty", "run": runs / "CartPole-v1-0", "root": runs, "tmp": tmp_path}
    assert main(["plot", *(a.format(**names) for a in args)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_json_lines_mode_prints_one_object_per_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "CartPole-v1", "--run-dir", str(tmp_path / "r"), "--json-lines", *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    objects = [json.loads(line) for line in lines]  # every line is JSON
    assert [o["time/updates"] for o in objects[:-1]] == [1, 2, 3, 4]
    assert objects[-1]["summary"]["env_id"] == "CartPole-v1" and objects[-1]["summary"]["alarms"] == []


def test_table_every_prints_a_diagnostics_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "CartPole-v1", "--run-dir", str(tmp_path / "r"), "--table-every", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert out.count("explained_variance") == 2 and "update 4" in out
