"""`trpo compare`: the metric functions with known answers, run planning, bad input, and a tiny
end-to-end comparison whose Markdown, CSV and PNG are checked."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trpo.cli.main import main
from trpo.tools.compare import CompareArgs, Progress, _explain, plan
from trpo.tools.compare_metrics import Aggregate, aggregate, fraction_lowered, steps_to_threshold, value_at, worst_drop

STEPS = np.array([100.0, 200.0, 300.0, 400.0, 500.0])
CURVE = np.array([10.0, math.nan, 30.0, 20.0, 50.0])


def test_metric_functions_known_answers() -> None:
    assert value_at(STEPS, CURVE, 250) == 10.0  # the last value at or before step 250 (NaN skipped)
    assert value_at(STEPS, CURVE, 400) == 20.0
    assert math.isnan(value_at(STEPS, CURVE, 50))
    assert steps_to_threshold(STEPS, CURVE, 25) == 300.0
    assert math.isnan(steps_to_threshold(STEPS, CURVE, 60))
    assert fraction_lowered(CURVE) == pytest.approx(1 / 3)  # 10 -> 30 -> 20 -> 50: one fall in three
    assert worst_drop(CURVE) == 10.0
    assert worst_drop(np.array([1.0, 2.0, 3.0])) == 0.0
    assert math.isnan(fraction_lowered(np.array([1.0])))
    a = aggregate([1.0, 3.0, math.nan])
    assert (a.mean, a.std, a.n, a.total) == (2.0, pytest.approx(math.sqrt(2)), 2, 3)
    assert a.text(1) == "2.0 ± 1.4 (2/3)"
    assert aggregate([math.nan]).text() == "—"


def test_plan_runs_each_sweep_for_the_algorithms_that_use_the_field(tmp_path: Path) -> None:
    args = CompareArgs("CartPole-v1", algos="trpo,ppo,npg", seeds=2, total_steps=10_240, out=tmp_path,
                       sweep=("max_kl=0.01,0.02", "clip_range=0.1"))  # fmt: skip
    jobs, sweeps = plan(args)
    assert [(field, users) for field, _, users in sweeps] == [("max_kl", ["trpo", "npg"]), ("clip_range", ["ppo"])]
    labels = sorted({job.label for job in jobs})
    assert labels == sorted(["trpo", "ppo", "npg", "trpo max_kl=0.01", "trpo max_kl=0.02", "npg max_kl=0.01",
                             "npg max_kl=0.02", "ppo clip_range=0.1"])  # fmt: skip
    assert len(jobs) == 2 * len(labels)
    # CartPole's TRPO preset has max_kl 0.02: that sweep point reuses the preset's runs
    assert len({job.run_dir for job in jobs}) == len(jobs) - 2 * 2
    assert all(job.config.eval_every == 1 and job.config.total_steps == 10_240 for job in jobs)  # 10 updates / 20
    shared = tmp_path / "shared.yaml"
    shared.write_text("hidden_sizes: [32]\nalgo: trpo\n")
    jobs, _ = plan(dataclasses.replace(args, config=shared, sweep=()))
    assert {(job.algo, job.config.algo, job.config.hidden_sizes) for job in jobs} == {
        (a, a, (32,)) for a in ("trpo", "ppo", "npg")
    }  # the file applies to every algorithm but does not change which one runs


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algos", "a2c"], "--algos must be a comma-separated list"),
        (["--sweep", "max_kl"], "must look like FIELD=V1,V2"),
        (["--sweep", "max_k=0.1"], "unknown config key 'max_k'"),
        (["--sweep", "max_kl=-1"], "max_kl must be > 0"),
        (["--algos", "trpo", "--sweep", "clip_range=0.1"], "no algorithm in --algos trpo uses clip_range"),
        (["--seeds", "0"], "must be >= 1"),
    ],
)
def test_bad_input_is_one_error_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "CartPole-v1", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unknown_environment_fails_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "NoSuchEnv-v0", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "out" / "runs").exists()


def test_tiny_comparison_writes_table_csv_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "CartPole-v1", "--algos", "trpo,ppo", "--seeds", "1", "--total-steps", "2048",
            "--out", str(out), "--evals", "2", "--eval-episodes", "1", "--workers", "2", "--threshold", "30",
            "--sweep", "clip_range=0.1,0.2"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed, progress = captured.out, captured.err.splitlines()
    assert progress[0] == "compare CartPole-v1: 3 runs to train, 2 at a time"  # clip_range 0.2 is the preset's run
    for k, line in enumerate(progress[1:], 1):
        assert re.fullmatch(rf"\[{k}/3\] (trpo|ppo|ppo clip_range=0\.1) seed 0: final return [\d.]+, \d+ s; "
                            r"(about \d:\d\d:\d\d left|all done in \d:\d\d:\d\d)", line), line  # fmt: skip
    assert len(progress) == 4 and "all done in" in progress[-1]
    table = (out / "compare.md").read_text()
    assert table in printed
    assert "| metric | trpo | ppo |" in table
    for label in ("final deterministic return", "return at 50% of the budget", "steps to reach the threshold",
                  "steps/s", "time per update (ms)", "mean KL per update", "max KL of an update",
                  "lowered the return", "worst drop", "line-search failures"):  # fmt: skip
        assert label in table
    assert "Sensitivity to clip_range" in table and "| ppo | 0.1 |" in table and "| ppo | 0.2 |" in table
    with open(out / "compare.csv", newline="") as f:
        rows = {(r["label"], r["metric"]): r for r in csv.DictReader(f)}
    assert int(rows[("trpo", "updates")]["n"]) == 1 and float(rows[("trpo", "updates")]["mean"]) == 2
    assert float(rows[("ppo", "final_return")]["values"]) == float(rows[("ppo", "final_return")]["mean"])
    assert rows[("ppo", "line_search_failures")]["n"] == "0"  # PPO has no line search
    assert rows[("ppo", "updates_over_delta")]["n"] == "0" and float(rows[("trpo", "updates_over_delta")]["mean"]) == 0
    assert float(rows[("trpo", "kl_max")]["mean"]) <= 0.02 + 1e-9  # TRPO's preset delta for CartPole
    assert {("ppo clip_range=0.1", "final_return"), ("ppo clip_range=0.2", "final_return")} <= rows.keys()
    for png in ("compare.png", "compare-sweep.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "runs").glob("*/seed-*/summary.json"))) == 3  # clip_range 0.2 is the preset's run
    # a second call reuses the complete runs of the same config and trains only the new sweep point
    argv += ["--sweep", "ppo_epochs=2"]
    before = (out / "runs" / "trpo" / "seed-0" / "summary.json").stat().st_mtime_ns
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Sensitivity to clip_range" in captured.out
    assert (
        captured.err.splitlines()[0]
        == f"compare CartPole-v1: 1 run to train (3 finished runs in {out} reused), 1 at a time"
    )
    assert captured.err.splitlines()[1].startswith("[1/1] ppo ppo_epochs=2 seed 0: final return ")
    assert (out / "runs" / "trpo" / "seed-0" / "summary.json").stat().st_mtime_ns == before
    assert (out / "runs" / "ppo-ppo_epochs-2" / "seed-0" / "summary.json").exists()


def test_progress_counts_finished_runs_and_estimates_the_time_left(tmp_path: Path) -> None:
    args = CompareArgs("CartPole-v1", algos="trpo,npg", seeds=2, total_steps=2048, out=tmp_path)
    jobs, _ = plan(args)
    for job in jobs:
        job.run_dir.mkdir(parents=True)
        (job.run_dir / "summary.json").write_text(json.dumps({"mean_return": 100.0 + job.seed}))
    file = io.StringIO()
    progress = Progress(jobs, workers=2, file=file)
    progress.start("CartPole-v1", 0, tmp_path)
    ok, failed = subprocess.CompletedProcess([], 0), subprocess.CompletedProcess([], 1)
    progress.done(1, ok, 10.0)
    progress.done(0, failed, 30.0)
    progress.done(3, ok, 20.0)
    lines = file.getvalue().splitlines()
    assert lines[0] == "compare CartPole-v1: 4 runs to train, 2 at a time"
    assert lines[1] == "[1/4] trpo seed 1: final return 101.0, 10 s; about 0:00:20 left"  # 10 s x 2 rounds of 2
    assert lines[2] == "[2/4] trpo seed 0: failed (exit 1), 30 s; about 0:00:20 left"  # 20 s mean x 1 round
    assert lines[3] == "[3/4] npg seed 1: final return 101.0, 20 s; about 0:00:20 left"
    progress.done(2, ok, 20.0)
    assert re.fullmatch(
        r"\[4/4\] npg seed 0: final return 100.0, 20 s; all done in 0:00:0\d", file.getvalue().splitlines()[4]
    )


def test_coinciding_npg_and_trpo_are_explained_by_the_line_search() -> None:
    note = "CartPole-v1: the npg and trpo curves coincide (...); trpo is drawn dashed with markers"
    never = {"trpo": {"backtracks": Aggregate(0.0, 0.0, 2, 2)}}
    assert _explain(note, never).endswith("(TRPO's line search never backtracked, so every TRPO update equals NPG's)")
    assert _explain(note, {"trpo": {"backtracks": Aggregate(3.0, 1.0, 2, 2)}}) == note
