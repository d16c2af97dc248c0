"""Costs outside the update: worker samplers, evaluation, `trpo train`'s summary, `trpo compare`'s cost rows and
`trpo plot --costs`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

import trpo.examples.safe_envs  # noqa: F401  (registration)
from trpo import CPO, TRPO, TRPOConfig, evaluate
from trpo.cli.main import main

POINT = "trpo.examples.safe_envs:PointHazard-v0"


def test_the_process_sampler_carries_costs_and_their_advantages() -> None:
    config = TRPOConfig(algo="cpo", sampler="process", workers=2, n_envs=4, n_steps=128, hidden_sizes=(8,))
    agent = CPO(POINT, config, seed=0)
    try:
        sampler = agent.start_sampler()
        batch = sampler.collect(0.99, 0.95)
        assert batch.cost_advantages is not None and batch.cost_advantages.shape == (512,)
        assert batch.cost_returns is not None and math.isfinite(batch.step_cost_mean)
        batch = sampler.collect(0.99, 0.95)  # 256 steps: the 200-step episodes have ended
        assert sampler.stats.saw_costs and len(batch.episode_costs) == 4
        assert list(sampler.stats.costs)[-4:] == batch.episode_costs
        data, _ = sampler.state()
        assert data["saw_costs"] and data["recent_costs"] == list(sampler.stats.costs)
    finally:
        agent.close()


def test_evaluation_reports_episode_costs_only_for_environments_with_costs() -> None:
    agent = TRPO(POINT, TRPOConfig(hidden_sizes=(8,)), seed=0)
    result = evaluate(agent, episodes=3, seed=0)
    costs = result["costs"]
    assert isinstance(costs, list) and len(costs) == 3
    assert result["mean_cost"] == pytest.approx(sum(costs) / 3)
    plain = evaluate(TRPO("CartPole-v1", TRPOConfig(hidden_sizes=(8,)), seed=0), episodes=2)
    assert "mean_cost" not in plain


def test_trpo_train_with_cpo_and_a_cost_limit_reports_the_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", POINT, "--algo", "cpo", "--cost-limit", "5", "--total-steps", "1024", "--n-envs", "4",
            "--n-steps", "128", "--eval-episodes", "2", "--run-dir", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "mean cost" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algo"] == "cpo" and math.isfinite(summary["mean_cost"])
    header = (run / "progress.csv").read_text().splitlines()[0].split(",")
    for key in ("rollout/ep_cost_mean", "train/cost_violation", "train/cpo_case", "train/cpo_nu",
                "train/cost_change", "train/cost_expected_change", "train/infeasible_updates",
                "alarms/stuck_infeasible", "train/cost_explained_variance"):  # fmt: skip
        assert key in header, key
    # a cost limit for an algorithm that does not read it is one line and exit 2
    assert main(["train", POINT, "--cost-limit", "5", "--total-steps", "256", "--run-dir", str(tmp_path / "x")]) == 2
    assert "cost_limit is read only by cpo and trpo-lag" in capsys.readouterr().err


def test_compare_has_cost_rows_and_plot_draws_cost_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    small = tmp_path / "small.yaml"
    small.write_text("n_envs: 4\nn_steps: 128\nhidden_sizes: [8]\n")  # 4 updates; the 200-step episodes end
    argv = ["compare", POINT, "--algos", "trpo,cpo,trpo-lag", "--seeds", "1", "--total-steps", "2048",
            "--cost-limit", "0.5", "--config", str(small), "--out", str(out), "--evals", "2", "--eval-episodes", "1",
            "--workers", "2"]  # fmt: skip
    assert main(argv) == 0
    table = (out / "compare.md").read_text()
    assert "| metric | trpo | cpo | trpo-lag |" in table
    for label in ("final deterministic episode cost", "episode cost during training", "within the limit"):
        assert label in table
    with open(out / "compare.csv", newline="") as f:
        rows = {(r["label"], r["metric"]): r for r in csv.DictReader(f)}
    for algo in ("trpo", "cpo", "trpo-lag"):
        assert rows[(algo, "train_cost_last")]["n"] == "1" and rows[(algo, "within_limit")]["n"] == "1"
    assert rows[("trpo", "infeasible_updates")]["n"] == "0"  # TRPO has no constraint to violate
    config = (out / "runs" / "cpo" / "seed-0" / "config.yaml").read_text()
    assert "cost_limit: 0.5" in config
    capsys.readouterr()
    png = tmp_path / "costs.png"
    assert main(["plot", str(out / "runs"), "--costs", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(out / "runs"), "--metric", "rollout/ep_cost_mean", "--out", str(png), "--force"]) == 0


def test_plot_costs_of_runs_without_costs_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    argv = ["train", "CartPole-v1", "--total-steps", "512", "--n-envs", "2", "--n-steps", "128", "--eval-episodes",
            "0", "--run-dir", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["plot", str(run), "--costs"]) == 2
    assert "reports no costs" in capsys.readouterr().err
