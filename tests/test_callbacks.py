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
from trpo.callbacks import Callback, CheckpointEvery, SaveBest, StopAtReturn, StopOnPlateau
from trpo.cli import main
from trpo.errors import ConfigError

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

    agent = TRPO("CartPole-v1", SMALL, seed=0).learn(10_000, run_dir=tmp_path, callback=[recorder, stop_after_two])
    assert agent.num_updates == 2 and agent.stop_reason == "stop_after_two"
    assert recorder.events == ["start True", "update 1 True", "update 2 True", "end"]
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
    with pytest.raises(ConfigError, match=r"must be a trpo\.callbacks\.Callback or a function"):
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
