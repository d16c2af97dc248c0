"""`trpo tune`: Optuna search over declared config ranges, pruning on periodic evaluation, a stored study
that resumes, and a best.yaml that `trpo train --config` reads."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from conftest import require
from trpo import TRPO, TRPOConfig
from trpo.cli.main import main

optuna = require("optuna", "tune")
from trpo.tools.tune import SEARCH_SPACE, PruneOnEvaluation, TuneArgs, trial_config, trial_seeds  # noqa: E402

TINY = ["--steps-per-trial", "512", "--eval-every", "1", "--eval-episodes", "1", "--params", "max_kl", "hidden_sizes"]


def trials_of(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_study_runs_resumes_and_writes_a_config_train_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tune"
    base = ["tune", "CartPole-v1", "--out", str(out), *TINY]
    assert main([*base, "--trials", "2"]) == 0
    assert len(trials_of(out)) == 2 and (out / "study.db").exists()
    assert main([*base, "--trials", "2", "--workers", "2"]) == 0  # the stored study goes on, in 2 processes
    rows = trials_of(out)
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"]
    assert len({(r["max_kl"], r["hidden_sizes"]) for r in rows}) == 4  # every worker and invocation draws anew
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"max_kl", "hidden_sizes"} and 1e-3 <= best["max_kl"] <= 0.1
    table = (out / "tune.md").read_text()
    assert "4 trials" in table and "best: trial" in table and (out / "tune.png").read_bytes().startswith(b"\x89PNG")
    run = tmp_path / "run"
    assert main(["train", "CartPole-v1", "--config", str(out / "best.yaml"), "--total-steps", "1024", "--quiet",
                 "--run-dir", str(run)]) == 0  # fmt: skip
    assert f"max_kl: {best['max_kl']}" in (run / "config.yaml").read_text()


def test_several_seeds_per_trial_average_the_final_returns(tmp_path: Path) -> None:
    """--seeds-per-trial 2: each trial trains two seeds (its own, never another trial's), the objective is the
    mean of their final returns, and each seed's return is what `trpo train` gives for that seed and config."""
    out = tmp_path / "tune"
    assert main(["tune", "CartPole-v1", "--out", str(out), *TINY, "--trials", "2", "--seeds-per-trial", "2",
                 "--no-pruning", "--seed", "5"]) == 0  # fmt: skip
    rows = trials_of(out)
    assert len(rows) == 2 and all(r["state"] == "COMPLETE" for r in rows)
    args = TuneArgs(env_id="CartPole-v1", seeds_per_trial=2, seed=5)
    assert trial_seeds(args, 0) == [5, 6] and trial_seeds(args, 1) == [7, 8]
    for row in rows:
        per_seed = [float(v) for v in row["seed_returns"].split()]
        assert len(per_seed) == 2 and float(row["value"]) == pytest.approx(sum(per_seed) / 2, abs=0.01)
    table = (out / "tune.md").read_text()
    assert "512 steps each on 2 seeds" in table and "mean final return" in table
    # trial 1's second seed (8), retrained by `trpo train` with the trial's values and the tune's evaluation
    first = rows[1]
    run = tmp_path / "again"
    hidden = first["hidden_sizes"].split("x")
    assert main(["train", "CartPole-v1", "--total-steps", "512", "--seed", "8", "--max-kl", first["max_kl"],
                 "--hidden-sizes", *hidden, "--eval-episodes", "1", "--checkpoint-every", "0", "--quiet",
                 "--run-dir", str(run)]) == 0  # fmt: skip
    import json

    summary = json.loads((run / "summary.json").read_text())
    assert summary["mean_return"] == pytest.approx(float(first["seed_returns"].split()[1]), abs=0.01)


def test_trial_configs_come_from_the_declared_ranges() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        config = trial_config(study.ask(), TRPOConfig(), SEARCH_SPACE, seed=3)
        assert 1e-3 <= config.max_kl <= 0.1 and 1e-4 <= config.vf_lr <= 3e-3 and 1 <= config.vf_epochs <= 20
        assert config.hidden_sizes in SEARCH_SPACE["hidden_sizes"].choices and config.seed == 3
        assert config.gamma in SEARCH_SPACE["gamma"].choices and config.n_steps in SEARCH_SPACE["n_steps"].choices


class AlwaysPrune:
    number = 0

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return True


def test_pruning_stops_training_at_the_first_evaluation() -> None:
    trial = AlwaysPrune()
    callback = PruneOnEvaluation(trial)  # type: ignore[arg-type]
    config = TRPOConfig(n_envs=2, n_steps=64, eval_every=2, eval_every_episodes=1)
    agent = TRPO("CartPole-v1", config, seed=0).learn(10_000, callback=callback)
    assert callback.pruned and agent.num_updates == 2 and len(trial.reports) == 1 and trial.reports[0][1] == 256
    assert agent.stop_reason == "pruned by Optuna (trial 0)"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--params", "nope"], "not in the search space"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--seeds-per-trial", "0"], "--seeds-per-trial must be >= 1"),
        (["--storage", "nosuchdb://x"], "--storage nosuchdb://x: cannot open the study"),
    ],
)
def test_bad_arguments_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["tune", "CartPole-v1", "--out", str(tmp_path / "t"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
