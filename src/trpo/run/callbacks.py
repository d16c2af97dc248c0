"""Callbacks: code of yours that `learn()` calls at the start, after every update, and at the end.

    agent.learn(200_000, run_dir="runs/cartpole", callback=[SaveBest(), StopAtReturn(475)])
    agent.learn(50_000, callback=lambda agent, stats: print(stats["train/kl"]))

A callback sees the update's statistics: the same keys as progress.csv (`rollout/ep_return_mean`,
`train/kl`, ... and, with `eval_every`, `eval/mean_return`, NaN on updates without an evaluation).
Returning False from `on_update` (or from a plain function) stops training after that update; the
learner is checkpointed as at any end, and `agent.stop_reason` says which callback stopped it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from trpo.errors import ConfigError
from trpo.files import atomic_write_text
from trpo.run.run_dir import BEST_RECORD, RunDir

if TYPE_CHECKING:
    from trpo.algos.learner import Learner

EVAL_RETURN = "eval/mean_return"


class Callback:
    """Override what you need. `on_update` returning False stops training after this update."""

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        """Before the first update of a `learn()` call (`run_dir` as given to `learn`)."""

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        """After each update and its logging; False stops training."""
        return None

    def on_training_end(self, agent: Learner) -> None:
        """After the last update of a `learn()` call (also after a stop by a callback)."""

    def stop_reason(self) -> str:
        """Why this callback stopped training (used when `on_update` returned False)."""
        return type(self).__name__


UpdateFunction = Callable[["Learner", Mapping[str, float]], bool | None]
CallbackArg = Callback | UpdateFunction | Iterable[Callback | UpdateFunction] | None


class FunctionCallback(Callback):
    """A plain function `f(agent, stats)` called after every update; returning False stops training."""

    def __init__(self, function: UpdateFunction) -> None:
        self.function = function

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        return self.function(agent, stats)

    def stop_reason(self) -> str:
        return getattr(self.function, "__name__", "function")


def as_callbacks(callback: CallbackArg) -> list[Callback]:
    """One callback, a function, or an iterable of them, as a list of `Callback`s."""
    if callback is None:
        return []
    if isinstance(callback, Callback) or callable(callback):
        items: list[Callback | UpdateFunction] = [callback]
    else:
        items = list(callback)
    out = []
    for item in items:
        if isinstance(item, Callback):
            out.append(item)
        elif callable(item):
            out.append(FunctionCallback(item))
        else:
            raise ConfigError(f"a callback must be a trpo.Callback or a function, not {type(item).__name__}")
    return out


def _needs_evaluation(agent: Learner, who: str) -> None:
    if agent.config.eval_every < 1:
        raise ConfigError(
            f"{who} reads {EVAL_RETURN}, which needs periodic evaluation: set eval_every (updates between "
            "evaluations; CLI --eval-every N)"
        )


class SaveBest(Callback):
    """Save the learner whenever the periodic deterministic evaluation (`eval_every`) beats its best so far.

    The model goes to `path` (default: RUN_DIR/best, a model directory that `trpo eval`, `record` and
    `export` read, as `trpo.load` does), with its evaluation in `path/best.json`, so that a resumed run
    only replaces it with a better one. `best_return` and `best_step` say what it holds.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.best_return = -math.inf
        self.best_step = -1

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        _needs_evaluation(agent, "SaveBest")
        if self.path is None:
            if run_dir is None:
                raise ConfigError("SaveBest needs a path, or a run_dir given to learn() (it saves to RUN_DIR/best)")
            self.path = RunDir(run_dir).best
        self.best_return, self.best_step = _read_best(self.path / BEST_RECORD)

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        value = stats.get(EVAL_RETURN, math.nan)
        if math.isfinite(value) and value > self.best_return:
            assert self.path is not None
            agent.save(self.path)
            self.best_return, self.best_step = value, agent.num_steps
            text = json.dumps({"mean_return": value, "step": agent.num_steps}) + "\n"
            atomic_write_text(self.path / BEST_RECORD, text)
        return None


def _read_best(path: Path) -> tuple[float, int]:
    """The (return, step) a previous SaveBest recorded; (-inf, -1) if none or unreadable (data, never code)."""
    try:
        data = json.loads(path.read_text()[:1000])
        value, step = float(data["mean_return"]), int(data["step"])
    except (OSError, ValueError, TypeError, KeyError, OverflowError):
        return -math.inf, -1
    return (value, step) if math.isfinite(value) else (-math.inf, -1)


class StopAtReturn(Callback):
    """Stop training once the periodic evaluation's mean return (`eval_every`) reaches `threshold`."""

    def __init__(self, threshold: float) -> None:
        if not math.isfinite(threshold):
            raise ConfigError(f"StopAtReturn needs a finite threshold (got {threshold})")
        self.threshold = threshold
        self.reached: float | None = None

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        _needs_evaluation(agent, "StopAtReturn")

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        value = stats.get(EVAL_RETURN, math.nan)
        if math.isfinite(value) and value >= self.threshold:
            self.reached = value
            return False
        return None

    def stop_reason(self) -> str:
        return f"StopAtReturn: evaluation mean return {self.reached:.2f} >= {self.threshold:g}"


class StopOnPlateau(Callback):
    """Stop training when `patience` periodic evaluations in a row have not beaten the best by `min_delta`."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ConfigError(f"StopOnPlateau needs patience >= 1 (got {patience})")
        self.patience, self.min_delta = patience, min_delta
        self.best = -math.inf
        self.stale = 0

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        _needs_evaluation(agent, "StopOnPlateau")

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        value = stats.get(EVAL_RETURN, math.nan)
        if not math.isfinite(value):
            return None
        if value > self.best + self.min_delta:
            self.best, self.stale = value, 0
            return None
        self.stale += 1
        return False if self.stale >= self.patience else None

    def stop_reason(self) -> str:
        return f"StopOnPlateau: {self.stale} evaluations without improving on {self.best:.2f}"


class CheckpointEvery(Callback):
    """Save the learner every `every` updates to DIRECTORY/step-N (default directory: RUN_DIR/checkpoints)."""

    def __init__(self, every: int, directory: str | Path | None = None) -> None:
        if every < 1:
            raise ConfigError(f"CheckpointEvery needs every >= 1 (got {every})")
        self.every = every
        self.directory = Path(directory) if directory is not None else None
        self.saved: list[Path] = []

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        if self.directory is None:
            if run_dir is None:
                raise ConfigError("CheckpointEvery needs a directory, or a run_dir given to learn()")
            self.directory = Path(run_dir) / "checkpoints"

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        if agent.num_updates % self.every == 0:
            assert self.directory is not None
            path = self.directory / f"step-{agent.num_steps}"
            agent.save(path)
            self.saved.append(path)
        return None
