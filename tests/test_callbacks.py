"""learn(): callbacks (functions and the built-ins) and continuing from where the agent is."""

from __future__ import annotations

import csv
import math
import warnings
from functools import partial
from pathlib import Path

import pytest

from probes import Endless
from trpo import TRPO, TRPOConfig, load
from trpo.cli.main import main
from trpo.errors import ConfigError
from trpo.run.callbacks import Callback, CheckpointEvery, SaveBest, StopAtReturn, StopOnPlateau

SMALL = TRPOConfig(n_envs=2, n_steps=64, eval_episodes=0, checkpoint_every=0)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_learn_n_trains_n_more_steps_and_until_is_a_total() -> None:
    agent = TRPO("CartPole-v1", SMALL, seed=0)
    agent.learn(256)
    assert agent.num_steps == 256
    agent.learn(256)
    assert agent.num_steps == 512  # n more, not a total of n
    agent.learn(until=640)
    assert agent.num_steps == 640
    agent.learn(100)  # rounds up to whole updates of 128
    assert agent.num_steps == 768
    with pytest.raises(ConfigError, match="not both"):
        agent.learn(128, until=1024)
    with pytest.raises(ConfigError, match="whole number"):
        agent.learn(-5)


def test_a_call_that_would_train_nothing_says_so() -> None:
    agent = TRPO("CartPole-v1", SMALL, seed=0).learn(256)
    with pytest.warns(UserWarning, match="nothing to train: the agent has taken 256 steps and the target is 128"):
        agent.learn(until=128)
    assert agent.num_steps == 256


def test_a_loaded_model_continues_its_counters_and_log(tmp_path: Path) -> None:
    TRPO("CartPole-v1", SMALL, seed=0).learn(256, run_dir=tmp_path)
    agent = load(tmp_path / "checkpoint")
    agent.learn(256, run_dir=tmp_path)
    assert agent.num_steps == 512 and agent.num_updates == 4
    assert [r["time/updates"] for r in rows(tmp_path)] == ["1.0", "2.0", "3.0", "4.0"]


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_training_start(self, agent: TRPO, run_dir: Path | None) -> None:
        self.events.append(f"start {run_dir is not None}")

    def on_update(self, agent: TRPO, stats: dict) -> None:  # type: ignore[override]
        self.events.append(f"update {agent.num_updates} {math.isfinite(stats['train/kl'])}")

    def on_training_end(self, agent: TRPO) -> None:
        self.events.append("end")


def test_a_function_that_returns_false_stops_training_after_a_checkpoint(tmp_path: Path) -> None:
    recorder = Recorder()

    def stop_after_two(agent: TRPO, stats: dict) -> bool:
        return agent.num_updates < 2

    after = Recorder()  # a callback after the one that stops still sees the last update
    callbacks = [recorder, stop_after_two, after]
    agent = TRPO("CartPole-v1", SMALL, seed=0).learn(10_000, run_dir=tmp_path, callback=callbacks)
    assert agent.num_updates == 2 and agent.stop_reason == "stop_after_two"
    assert recorder.events == after.events == ["start True", "update 1 True", "update 2 True", "end"]
    assert load(tmp_path / "checkpoint").num_updates == 2  # the stop was checkpointed
    assert len(rows(tmp_path)) == 2


def test_save_best_keeps_the_best_evaluated_model_loadable_by_the_cli(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = SMALL.replace(eval_every=1, eval_every_episodes=2)
    best = SaveBest()
    agent = TRPO("CartPole-v1", config, seed=0).learn(6 * 128, run_dir=tmp_path, callback=best)
    evaluations = [float(r["eval/mean_return"]) for r in rows(tmp_path)]
    assert best.best_return == max(evaluations) and best.path == tmp_path / "best"
    best_update = evaluations.index(max(evaluations)) + 1
    assert best.best_step == best_update * 128
    assert load(tmp_path / "best").num_updates == best_update
    assert agent.num_updates == 6
    assert main(["eval", str(tmp_path / "best"), "--episodes", "1", "--json"]) == 0
    assert '"mean_return"' in capsys.readouterr().out


def test_stop_at_return_and_stop_on_plateau(tmp_path: Path) -> None:
    config = SMALL.replace(eval_every=2, eval_every_episodes=1)
    agent = TRPO("CartPole-v1", config, seed=0).learn(10_000, callback=StopAtReturn(1.0))
    assert agent.num_updates == 2 and agent.stop_reason.startswith("StopAtReturn: evaluation mean return")
    # every Endless episode returns 5: the second evaluation does not improve on the first
    agent = TRPO(partial(Endless, 5), config, seed=0).learn(10_000, callback=StopOnPlateau(patience=1))
    assert agent.num_updates == 4 and agent.stop_reason.startswith("StopOnPlateau: 1 evaluations")


def test_evaluation_callbacks_need_periodic_evaluation() -> None:
    agent = TRPO("CartPole-v1", SMALL, seed=0)
    for callback in (SaveBest("unused"), StopAtReturn(100.0), StopOnPlateau(3)):
        with pytest.raises(ConfigError, match="set eval_every"):
            agent.learn(128, callback=callback)
    assert agent.num_updates == 0
    with pytest.raises(ConfigError, match=r"must be a trpo\.Callback or a function"):
        agent.learn(128, callback=[42])  # type: ignore[list-item]


def test_checkpoint_every_writes_loadable_models(tmp_path: Path) -> None:
    saver = CheckpointEvery(2)
    TRPO("CartPole-v1", SMALL, seed=0).learn(5 * 128, run_dir=tmp_path, callback=saver)
    assert saver.saved == [tmp_path / "checkpoints" / "step-256", tmp_path / "checkpoints" / "step-512"]
    assert load(saver.saved[-1]).num_steps == 512


def test_no_warning_when_there_is_something_to_train() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TRPO("CartPole-v1", SMALL, seed=0).learn(128)


def test_the_api_applies_the_envs_preset_when_no_config_is_given() -> None:
    from trpo import PPO, make_agent
    from trpo.config.presets import preset_config

    agent = TRPO("Pendulum-v1", seed=3)
    assert agent.preset == "Pendulum-v1"
    assert agent.config == preset_config("Pendulum-v1")[0].replace(seed=3)  # what `trpo train Pendulum-v1` uses
    assert make_agent("Pendulum-v1").preset == "Pendulum-v1"
    ppo = PPO("CartPole-v1")
    assert ppo.config == preset_config("CartPole-v1", algo="ppo")[0] and ppo.preset == "CartPole-v1 (ppo)"
    explicit = TRPO("Pendulum-v1", TRPOConfig(), seed=0)  # a config given: exactly that config
    assert explicit.preset is None and explicit.config.n_envs == TRPOConfig().n_envs
    assert TRPO("Acrobot-v1").preset is None and TRPO("Acrobot-v1").config == TRPOConfig()  # no preset: defaults


def test_cli_save_best_and_stop_at_return(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    run = tmp_path / "run"
    argv = ["train", "CartPole-v1", "--n-envs", "2", "--n-steps", "64", "--total-steps", "20000", "--quiet",
            "--eval-every", "1", "--eval-every-episodes", "1", "--eval-episodes", "1",
            "--run-dir", str(run)]  # fmt: skip
    assert main([*argv, "--save-best", "--stop-at-return", "15"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"].startswith("StopAtReturn: evaluation mean return") and summary["total_steps"] < 20000
    evaluations = [float(r["eval/mean_return"]) for r in rows(run)]
    assert evaluations[-1] >= 15 and all(v < 15 for v in evaluations[:-1])  # stopped at the first one reaching it
    assert summary["best_return"] == max(evaluations) and (run / "best" / "best.json").exists()
    assert load(run / "best").num_steps == summary["best_step"]
    # resuming keeps the best so far: it is only replaced by a better evaluation
    best = json.loads((run / "best" / "best.json").read_text())
    assert best == {"mean_return": summary["best_return"], "step": summary["best_step"]}
    capsys.readouterr()
    assert main(["train", "CartPole-v1", "--run-dir", str(tmp_path / "r2"), "--save-best", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --save-best need") and "--eval-every N" in err and err.count("\n") == 1
    assert not (tmp_path / "r2").exists()
