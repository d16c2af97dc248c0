"""The run directory: the one place that names the files of a run.

    config.yaml          the exact, complete config of the run (re-runnable with --config)
    progress.csv         one row per update, every diagnostic
    events.out.tfevents* TensorBoard, the same keys
    checkpoint/          the latest checkpoint (model.safetensors + state.json), written atomically
    best/                the model of the best periodic evaluation (--save-best), with best.json
    summary.json         the final deterministic evaluation and timing
    policy.onnx, video.mp4, diagnostics.png   what `trpo export`, `record` and `plot` write by default

`trpo train`, `--resume`, `eval`, `plot`, `record`, `export` and `compare` all find a run's files here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
PROGRESS = "progress.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint"
BEST = "best"
BEST_RECORD = "best.json"
EVENTS = "events.out.tfevents*"
POLICY = "policy.onnx"
VIDEO = "video.mp4"
DIAGNOSTICS = "diagnostics.png"


@dataclass(frozen=True)
class RunDir:
    """A run directory (it may not exist yet) and the paths of its files."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def progress(self) -> Path:
        return self.path / PROGRESS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def policy(self) -> Path:
        return self.path / POLICY

    @property
    def video(self) -> Path:
        return self.path / VIDEO

    @property
    def diagnostics(self) -> Path:
        return self.path / DIAGNOSTICS

    def is_run(self) -> bool:
        """Whether `trpo train` wrote here (its config.yaml is the mark of a run)."""
        return self.config.is_file()

    def run_files(self) -> Iterator[Path]:
        """The files and directories a training run creates here (what `--force` replaces)."""
        for name in (CONFIG, PROGRESS, SUMMARY, CHECKPOINT, f"{CHECKPOINT}.old", f"{CHECKPOINT}.tmp", BEST):
            yield self.path / name
        yield from self.path.glob(EVENTS)

    def clear(self) -> None:
        """Delete what a previous run wrote here (and nothing else)."""
        for target in self.run_files():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
