"""Run logging: progress.csv (flushed every update), TensorBoard scalars, and the console: a progress
bar with a compact table every few updates, or one JSON object per update (`json_lines`), or quiet.

The progress bar is one line laid out for the terminal's width: fields are shortened or dropped (KL,
steps/s, the bar itself, ...) so that the step count, its total and the elapsed and remaining time are
never cut. When stdout is not a terminal (piped to a file) it is a plain line every few updates instead."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

from trpo.errors import UserError
from trpo.files import atomic_write_text
from trpo.run.health import FiredAlarm
from trpo.run.run_dir import RunDir

# the keys of the console table (SB3-like), when present in the row
TABLE_KEYS = (
    "rollout/ep_return_mean", "rollout/ep_len_mean", "time/steps", "time/updates", "time/fps",
    "train/kl", "train/kl_max", "train/entropy", "train/policy_std", "train/explained_variance",
    "train/value_loss", "train/cg_residual", "train/backtracks", "train/line_search_success",
    "rollout/ep_cost_mean", "train/cost_violation", "train/cpo_case", "train/lagrange_multiplier",
)  # fmt: skip


PLAIN_LINES = 20  # without a terminal: about this many progress lines per run (and the last update's)
MIN_BAR, MAX_BAR = 10, 40
# the progress line's layouts, richest first: the first that fits the width is drawn
LAYOUTS: tuple[tuple[str, ...], ...] = (
    ("name", "bar", "steps", "fps", "return", "kl", "time"),
    ("name", "bar", "steps", "fps", "return", "kl", "time_short"),
    ("name", "bar", "steps", "return", "kl", "time_short"),
    ("name", "bar", "count", "return", "kl", "time_short"),
    ("name", "bar", "count", "return", "time_short"),
    ("name", "count", "return", "time_short"),
    ("name", "count_short", "return", "time_short"),
    ("count_short", "return", "time_short"),
    ("count_short", "time_short"),
)


def planned_steps(requested: int, start_steps: int, batch_size: int) -> int:
    """The step count training ends at: the budget rounded up to whole updates of `batch_size` steps."""
    if batch_size < 1 or requested <= start_steps:
        return max(requested, start_steps)
    return start_steps + math.ceil((requested - start_steps) / batch_size) * batch_size


def budget_line(requested: int, start_steps: int, start_updates: int, batch_size: int) -> str | None:
    """'100,352 steps: 98 updates of 1,024 (requested 100,000)' when the budget is not a whole number
    of updates (None when it is)."""
    total = planned_steps(requested, start_steps, batch_size)
    if total == requested or batch_size < 1:
        return None
    updates = start_updates + (total - start_steps) // batch_size
    return f"{total:,} steps: {updates:,} updates of {batch_size:,} (requested {requested:,})"


def _clock(seconds: float | None) -> str:
    return "-:--:--" if seconds is None or not math.isfinite(seconds) else str(datetime.timedelta(seconds=int(seconds)))


def _short_count(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.0f}"


@dataclasses.dataclass
class ProgressState:
    """What the progress display shows: steps done of `total`, and the last update's diagnostics."""

    total: int
    start_steps: int = 0
    steps: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    fps: float = math.nan
    ret: float = math.nan
    kl: float = math.nan

    def times(self, now: float) -> tuple[float, float | None]:
        """(elapsed seconds, estimated seconds left at the average rate so far; None before any step)."""
        elapsed = max(0.0, now - self.started)
        done = self.steps - self.start_steps
        if done <= 0 or elapsed <= 0:
            return elapsed, None
        return elapsed, max(0, self.total - self.steps) * elapsed / done

    def fields(self, now: float) -> dict[str, str]:
        """Every field of the progress line, in its long and short forms."""
        elapsed, left = self.times(now)
        count = f"{self.steps:,}/{self.total:,}"
        return {
            "name": "trpo",
            "steps": f"{count} steps",
            "count": count,
            "count_short": f"{_short_count(self.steps)}/{_short_count(self.total)}",
            "fps": "- steps/s" if math.isnan(self.fps) else f"{self.fps:,.0f} steps/s",
            "return": "return -" if math.isnan(self.ret) else f"return {self.ret:.1f}",
            "kl": "KL -" if math.isnan(self.kl) else f"KL {self.kl:.4f}",
            "time": f"{_clock(elapsed)} elapsed, {_clock(left)} left",
            "time_short": f"{_clock(elapsed)}, {_clock(left)} left",
        }

    def plain_line(self, now: float) -> str:
        """The line written when stdout is not a terminal (no bar, every field)."""
        fields = self.fields(now)
        return f"trpo {fields['steps']}  " + "  ".join(fields[k] for k in ("fps", "return", "kl", "time"))


def fit_progress_line(fields: dict[str, str], fraction: float, width: int) -> Text:
    """The first of LAYOUTS that fits in `width` cells (a bar gets the room left, MIN_BAR..MAX_BAR)."""
    for layout in LAYOUTS:
        used = _assemble(layout, fields, fraction, 0).cell_len  # everything but the bar's own cells
        if "bar" not in layout and used <= width:
            return _assemble(layout, fields, fraction, 0)
        if "bar" in layout and width - used >= MIN_BAR:
            return _assemble(layout, fields, fraction, min(MAX_BAR, width - used))
    return _assemble(LAYOUTS[-1], fields, fraction, 0)


def _assemble(layout: tuple[str, ...], fields: dict[str, str], fraction: float, bar: int) -> Text:
    line = Text(no_wrap=True, overflow="crop")
    for i, key in enumerate(layout):
        if i:
            line.append(" " if layout[i - 1] in ("name", "bar") else "  ")
        if key == "bar":
            filled = round(bar * min(1.0, max(0.0, fraction)))
            line.append("━" * filled, style="bar.finished" if filled == bar else "bar.complete")
            line.append("━" * (bar - filled), style="bar.back")
        else:
            line.append(fields[key], style="bold" if key == "name" else "")
    return line


class ProgressLine:
    """The live progress line: laid out again for the console's width at every refresh."""

    def __init__(self, state: ProgressState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.clock = clock

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        fraction = self.state.steps / self.state.total if self.state.total else 1.0
        yield fit_progress_line(self.state.fields(self.clock()), fraction, options.max_width)


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
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a trpo progress log ({str(exc)[:100]}); move it away to resume") from None
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
        batch_size: int = 0,
        console: Console | None = None,
    ) -> None:
        """Continue a run at (`start_steps`, `start_updates`): logged rows after that point, which a
        crash after the last checkpoint left behind, are dropped from the CSV and TensorBoard.

        Console: a progress bar (`progress_bar`) with the table of `format_table` printed above it every
        `table_every` updates (0 = never); or, with `json_lines`, one JSON object per update on stdout.
        When `console` (default: stdout's) is not a terminal, the bar is a plain line every few updates.
        With `batch_size` (steps per update), the bar's total is `total_steps` rounded up to whole
        updates, announced first when it differs. Alarms are printed once each, in whichever mode (to
        stderr when the console is quiet)."""
        self.run_dir = run_dir
        self.table_every = table_every
        self.json_lines = json_lines
        self._csv_file: IO[str] | None = None
        self._csv: Any = None
        self._fields: list[str] | None = None
        self._tb: Any = None
        self._lock = contextlib.ExitStack()
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to import

            run_dir.mkdir(parents=True, exist_ok=True)
            RunDir(run_dir).check_links()
            self._lock.enter_context(RunDir(run_dir).lock())  # one writer (reentrant: `trpo train` holds it too)
            truncate_progress(RunDir(run_dir).progress, start_updates)
            self._tb = SummaryWriter(log_dir=str(run_dir), purge_step=start_steps + 1 if start_steps else None)
        self.console: Console | None = None
        self._live: Live | None = None
        self._state = ProgressState(planned_steps(total_steps, start_steps, batch_size), start_steps, start_steps)
        updates_left = (self._state.total - start_steps) / batch_size if batch_size > 0 else PLAIN_LINES
        self._line_every = max(1, math.ceil(updates_left / PLAIN_LINES))
        if progress_bar and not json_lines:
            self.console = console or Console()
            announcement = budget_line(total_steps, start_steps, start_updates, batch_size)
            if announcement is not None:
                self.console.print(announcement, highlight=False, soft_wrap=True)
            if self.console.is_terminal or self.console.is_jupyter:
                self._live = Live(ProgressLine(self._state), console=self.console, refresh_per_second=4)
                self._live.start()

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
        if self.console is not None:
            self._show(row, steps)
        if self.json_lines:
            print(json.dumps({k: None if math.isnan(v) else v for k, v in row.items()}), flush=True)

    def alarm(self, alarm: FiredAlarm) -> None:
        """Report an alarm that just fired (once per alarm and run)."""
        if self.json_lines:
            print(json.dumps({"alarm": alarm.name, "update": alarm.update, "step": alarm.step,
                              "message": alarm.message, "fix": alarm.fix}), flush=True)  # fmt: skip
        elif self.console is not None:
            # one line in a log file; wrapped at words in a terminal
            self.console.print(f"[bold yellow]{alarm.line()}", highlight=False, soft_wrap=not self.console.is_terminal)
        else:
            print(alarm.line(), file=sys.stderr, flush=True)

    def _show(self, row: dict[str, float], steps: int) -> None:
        """Update the progress line (or, without a terminal, write it every few updates) and the table."""
        assert self.console is not None
        state = self._state
        state.steps, state.fps = steps, row.get("time/fps", math.nan)
        state.ret, state.kl = row.get("rollout/ep_return_mean", math.nan), row.get("train/kl", math.nan)
        updates = int(row.get("time/updates", 0))
        if self._live is not None:
            self._live.refresh()
        elif updates % self._line_every == 0 or steps >= state.total:
            self.console.print(state.plain_line(time.monotonic()), highlight=False, soft_wrap=True)
        if self.table_every and updates % self.table_every == 0:
            self.console.print(format_table(row))

    def _open_csv(self, fields: list[str]) -> None:
        assert self.run_dir is not None
        path = RunDir(self.run_dir).progress
        exists = path.exists() and path.stat().st_size > 0
        if exists:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                fields = header
        self._fields = fields
        # appended, never through a symbolic link (O_NOFOLLOW): nothing is written outside the run directory
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        self._csv_file = open(fd, "a", newline="")  # noqa: SIM115 - kept open for the run
        self._csv = csv.DictWriter(self._csv_file, fieldnames=fields, extrasaction="ignore")
        if not exists:
            self._csv.writeheader()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.console = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        self._lock.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
