"""Run logging: progress.csv (flushed every update), TensorBoard scalars and a progress bar."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from trpo.checkpoint import atomic_write_text

PROGRESS_FILE = "progress.csv"


def truncate_progress(path: Path, updates: int) -> None:
    """Keep the header and the rows of updates 1..`updates` of a progress.csv (rewritten atomically)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("time/updates") if "time/updates" in header else None
    kept = [r for r in body if column is not None and len(r) == len(header) and _as_number(r[column]) <= updates]
    if len(kept) == len(body):
        return
    text = io.StringIO(newline="")
    csv.writer(text).writerows([header, *kept])
    atomic_write_text(path, text.getvalue())


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


class RunLogger:
    """Writes one row of diagnostics per update to CSV and TensorBoard, and drives the progress bar."""

    def __init__(
        self,
        run_dir: Path | None,
        total_steps: int,
        start_steps: int = 0,
        start_updates: int = 0,
        progress_bar: bool = True,
    ) -> None:
        """Continue a run at (`start_steps`, `start_updates`): logged rows after that point, which a
        crash after the last checkpoint left behind, are dropped from the CSV and TensorBoard."""
        self.run_dir = run_dir
        self._csv_file: IO[str] | None = None
        self._csv: Any = None
        self._fields: list[str] | None = None
        self._tb: Any = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            run_dir.mkdir(parents=True, exist_ok=True)
            truncate_progress(run_dir / PROGRESS_FILE, start_updates)
            self._tb = SummaryWriter(log_dir=str(run_dir), purge_step=start_steps + 1 if start_steps else None)
        self._progress: Progress | None = None
        if progress_bar:
            self._progress = Progress(
                TextColumn("[bold]trpo"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TextColumn("{task.fields[fps]:>7} steps/s"),
                TextColumn("return {task.fields[ret]}"),
                TextColumn("KL {task.fields[kl]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(
                "train", total=total_steps, completed=start_steps, fps="-", ret="-", kl="-"
            )
            self._progress.start()

    def log(self, row: dict[str, float]) -> None:
        """Append one update's diagnostics (keys are the same every update of a run)."""
        steps = int(row["time/steps"])
        if self.run_dir is not None:
            if self._csv is None:
                self._open_csv(list(row))
            assert self._csv is not None and self._csv_file is not None
            self._csv.writerow({k: row.get(k, math.nan) for k in self._fields or []})
            self._csv_file.flush()
            for key, value in row.items():
                self._tb.add_scalar(key, value, global_step=steps)
            self._tb.flush()
        if self._progress is not None:
            ret = row.get("rollout/ep_return_mean", math.nan)
            self._progress.update(
                self._task,
                completed=steps,
                fps=f"{row['time/fps']:.0f}",
                ret="-" if math.isnan(ret) else f"{ret:.1f}",
                kl=f"{row['train/kl']:.4f}",
            )

    def _open_csv(self, fields: list[str]) -> None:
        assert self.run_dir is not None
        path = self.run_dir / PROGRESS_FILE
        exists = path.exists() and path.stat().st_size > 0
        if exists:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                fields = header
        self._fields = fields
        self._csv_file = open(path, "a", newline="")  # noqa: SIM115 - kept open for the run
        self._csv = csv.DictWriter(self._csv_file, fieldnames=fields, extrasaction="ignore")
        if not exists:
            self._csv.writeheader()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
