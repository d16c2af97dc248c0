"""Run logging: progress.csv (flushed every update), TensorBoard scalars, and the console: a progress
bar with a compact table every few updates, or one JSON object per update (`json_lines`), or quiet."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from trpo.checkpoint import atomic_write_text
from trpo.health import FiredAlarm

PROGRESS_FILE = "progress.csv"
# the keys of the console table (SB3-like), when present in the row
TABLE_KEYS = (
    "rollout/ep_return_mean", "rollout/ep_len_mean", "time/steps", "time/updates", "time/fps",
    "train/kl", "train/kl_max", "train/entropy", "train/policy_std", "train/explained_variance",
    "train/value_loss", "train/cg_residual", "train/backtracks", "train/line_search_success",
)  # fmt: skip


def format_table(row: dict[str, float]) -> Table:
    """A compact two-column table of the main diagnostics of one update, grouped by namespace."""
    table = Table(show_header=False, box=None, padding=(0, 1), title=f"update {row.get('time/updates', 0):.0f}")
    table.add_column(style="bold")
    table.add_column(justify="right")
    group = ""
    for key in TABLE_KEYS:
        if key not in row:
            continue
        namespace, name = key.split("/", 1)
        if namespace != group:
            table.add_row(f"{namespace}/", "")
            group = namespace
        table.add_row(f"  {name}", _format_value(row[key]))
    return table


def _format_value(value: float) -> str:
    if not math.isfinite(value):
        return "-" if math.isnan(value) else str(value)
    if value == int(value) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


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
        table_every: int = 0,
        json_lines: bool = False,
    ) -> None:
        """Continue a run at (`start_steps`, `start_updates`): logged rows after that point, which a
        crash after the last checkpoint left behind, are dropped from the CSV and TensorBoard.

        Console: a progress bar (`progress_bar`) with the table of `format_table` printed above it every
        `table_every` updates (0 = never); or, with `json_lines`, one JSON object per update on stdout.
        Alarms are printed once each, in whichever mode (to stderr when the console is quiet)."""
        self.run_dir = run_dir
        self.table_every = table_every
        self.json_lines = json_lines
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
        if progress_bar and not json_lines:
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
            updates = int(row.get("time/updates", 0))
            if self.table_every and updates % self.table_every == 0:
                self._progress.console.print(format_table(row))
        if self.json_lines:
            print(json.dumps({k: None if math.isnan(v) else v for k, v in row.items()}), flush=True)

    def alarm(self, alarm: FiredAlarm) -> None:
        """Report an alarm that just fired (once per alarm and run)."""
        if self.json_lines:
            print(json.dumps({"alarm": alarm.name, "update": alarm.update, "step": alarm.step,
                              "message": alarm.message, "fix": alarm.fix}), flush=True)  # fmt: skip
        elif self._progress is not None:
            self._progress.console.print(f"[bold yellow]{alarm.line()}", highlight=False)
        else:
            print(alarm.line(), file=sys.stderr, flush=True)

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
