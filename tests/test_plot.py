"""`trpo plot` and the console modes of `trpo train` (JSON lines, tables)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from trpo.cli.main import main
from trpo.tools.plot import Run, coinciding, common_range, find_runs, group_label, mean_and_spread

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


def fake_run(seed: int | None, values: list[float], algo: str = "trpo", step: float = 100.0) -> Run:
    steps = np.arange(1, len(values) + 1) * step
    return Run(Path(f"/runs/{algo}-{seed}"), "CartPole-v1", algo, seed, {"time/steps": steps, "r": np.array(values)},
               None, [])  # fmt: skip


def test_labels_count_distinct_seeds_and_say_when_runs_repeat_one() -> None:
    assert group_label("trpo", [fake_run(0, [1.0]), fake_run(1, [1.0]), fake_run(2, [1.0])]) == "trpo (3 seeds)"
    assert group_label("trpo", [fake_run(0, [1.0])]) == "trpo (1 seed)"
    assert group_label("trpo", [fake_run(0, [1.0])] * 4) == "trpo (4 runs, 1 seed: 0)"
    assert group_label("ppo", [fake_run(1, [1.0]), fake_run(0, [1.0]), fake_run(1, [2.0])]) == (
        "ppo (3 runs, 2 seeds: 0, 1)"
    )
    assert group_label("trpo", [fake_run(None, [1.0]), fake_run(None, [1.0])]) == "trpo (2 runs)"


def test_coinciding_curves_are_found_seed_by_seed() -> None:
    trpo = [fake_run(0, [1.0, 2.0, 3.0]), fake_run(1, [1.0, 5.0, 9.0])]
    npg = [fake_run(1, [1.0, 5.0, 9.0], "npg"), fake_run(0, [1.0, 2.0, 3.0], "npg")]  # same curves, other order
    ppo = [fake_run(0, [1.0, 2.0, 3.0], "ppo"), fake_run(1, [1.0, 5.0, 9.5], "ppo")]  # one value differs
    assert coinciding({"trpo": trpo, "npg": npg, "ppo": ppo}, "r") == {"trpo": "npg"}
    assert coinciding({"trpo": trpo, "ppo": ppo}, "r") == {}
    shifted = [fake_run(0, [1.0, 2.0, 3.0], "npg", step=200.0), fake_run(1, [1.0, 5.0, 9.0], "npg", step=200.0)]
    assert coinciding({"trpo": trpo, "npg": shifted}, "r") == {}  # same values at other steps


def test_runs_of_different_budgets_are_cut_to_the_common_range() -> None:
    curves, end = common_range([fake_run(0, [1.0, 2.0, 3.0, 4.0]), fake_run(1, [5.0, 6.0])], "r")
    assert end == 200.0 and [x.tolist() for x, _ in curves] == [[100.0, 200.0], [100.0, 200.0]]
    _, end = common_range([fake_run(0, [1.0, 2.0]), fake_run(1, [5.0, 6.0])], "r")
    assert end is None


def test_plot_writes_next_to_the_runs_and_says_where(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plot", str(runs / "CartPole-v1-0"), str(runs / "CartPole-v1-1")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {runs / 'curves.png'}"  # next to the first run
    read_png(runs / "curves.png")
    (runs / "curves.png").unlink()
    assert main(["plot", str(runs)]) == 0  # one directory of runs: the picture goes into it
    assert capsys.readouterr().out.strip() == f"wrote {runs / 'curves.png'}"
    read_png(runs / "curves.png")
    assert not list(tmp_path.iterdir())  # nothing in the current directory


def test_plot_notes_repeated_seeds_and_different_budgets(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):  # two copies of the seed-0 run
        shutil.copytree(runs / "CartPole-v1-0", tmp_path / name)
    progress = tmp_path / "b" / "progress.csv"
    with open(progress, newline="") as f:
        rows = list(csv.reader(f))
    with open(progress, "w", newline="") as f:
        csv.writer(f).writerows(rows[:3])  # run b stopped after 2 of its 4 updates
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "note: CartPole-v1 trpo: the runs end between 512 and 1,024 steps; the mean is drawn to 512, where the "
        "shortest ends, and each longer run alone after it (thin)",
        "note: CartPole-v1 trpo: 2 runs share 1 seed (0); the band is their spread, not over seeds",
        f"wrote {tmp_path / 'curves.png'}",
    ]


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
