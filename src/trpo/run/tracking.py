"""Experiment tracking with Weights & Biases, as a callback (`trpo train --track wandb`).

    agent.learn(1_000_000, run_dir="runs/cheetah", callback=WandbTracker(project="trpo"))

Every update's statistics go to W&B under the same keys as progress.csv and TensorBoard, at step =
environment steps; the config is the run's config; health alarms go to the run's summary (`alarms`)
as they fire; `finish(summary)` adds the final evaluation and closes the run. The W&B run is named after
the run directory and grouped by its parent directory. W&B's own settings apply (`WANDB_MODE=offline`
keeps everything in `WANDB_DIR` or the run directory, with no network). Tracking is a choice of the
invocation, never stored in the run: resuming a run someone else made does not connect anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trpo.errors import UserError
from trpo.run.callbacks import Callback

if TYPE_CHECKING:
    from trpo.algos.learner import Learner


class WandbTracker(Callback):
    """Logs a learner's training to a W&B run (opened at training start, closed by `finish`)."""

    def __init__(self, project: str = "trpo", name: str | None = None, group: str | None = None) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("--track wandb needs the wandb package: pip install 'trpo[wandb]'") from None
        self.wandb = wandb
        self.project, self.name, self.group = project, name, group
        self.run: Any = None
        self.alarms_logged = 0

    def on_training_start(self, agent: Learner, run_dir: Path | None) -> None:
        if self.run is not None:  # a second learn() call goes on in the same W&B run
            return
        name = self.name or (run_dir.name if run_dir is not None else None)
        group = self.group or (run_dir.resolve().parent.name if run_dir is not None else None)
        self.run = self.wandb.init(
            project=self.project, name=name, group=group, dir=str(run_dir) if run_dir is not None else None,
            config={"env_id": agent.env_id, **agent.config.to_dict()}, reinit="create_new",
        )  # fmt: skip

    def on_update(self, agent: Learner, stats: Mapping[str, float]) -> bool | None:
        self.run.log({k: v for k, v in stats.items() if math.isfinite(v)}, step=agent.num_steps)
        alarms = agent.alarms
        if len(alarms) > self.alarms_logged:
            self.run.summary["alarms"] = [f"{a['name']} (update {a['update']}): {a['message']}" for a in alarms]
            self.alarms_logged = len(alarms)
        return None

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Add the final summary (e.g. the deterministic evaluation of `trpo train`) and close the run."""
        if self.run is None:
            return
        if summary:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, int | float | str)})
        self.run.finish()
        self.run = None
