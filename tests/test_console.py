"""The progress display of `trpo train`: laid out for the terminal's width, plain lines when stdout is
not a terminal, and the budget's rounding to whole updates announced."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from trpo.cli.main import main
from trpo.run.progress import ProgressLine, ProgressState, RunLogger, budget_line, planned_steps


def state_at_13312() -> ProgressState:
    """13,312 of 50,176 steps after 6 s (so 0:00:06 elapsed, 0:00:16 left at the average rate)."""
    return ProgressState(total=50_176, start_steps=0, steps=13_312, started=0.0, fps=7874.0, ret=102.7, kl=0.0164)


def render(state: ProgressState, width: int) -> str:
    file = io.StringIO()
    Console(width=width, file=file, color_system=None).print(ProgressLine(state, clock=lambda: 6.0))
    out = file.getvalue()
    assert out.count("\n") == 1, out  # one line, never wrapped
    return out.rstrip("\n")


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 200])
def test_progress_line_fits_the_width_and_keeps_the_total_and_the_times(width: int) -> None:
    line = render(state_at_13312(), width)
    assert len(line) <= width
    assert "13,312/50,176" in line or "13.3k/50.2k" in line
    assert "0:00:06" in line and "0:00:16 left" in line


def test_progress_line_drops_fields_as_the_terminal_narrows() -> None:
    wide, eighty, sixty = (render(state_at_13312(), w) for w in (120, 80, 60))
    assert "7,874 steps/s" in wide and "KL 0.0164" in wide and "0:00:06 elapsed" in wide and "━" in wide
    assert "steps/s" not in eighty and "KL 0.0164" in eighty and "return 102.7" in eighty and "━" in eighty
    assert "━" not in sixty and "KL" not in sixty and "13,312/50,176" in sixty and "return 102.7" in sixty
    assert len(eighty) > 70  # the bar takes the room left


def test_progress_before_the_first_update_has_no_estimate() -> None:
    line = render(ProgressState(total=50_176, started=0.0), 80)
    assert "0/50,176" in line and "-:--:-- left" in line


def test_budget_rounds_up_to_whole_updates_and_says_so() -> None:
    assert planned_steps(100_000, 0, 1024) == 100_352
    assert budget_line(100_000, 0, 0, 1024) == "100,352 steps: 98 updates of 1,024 (requested 100,000)"
    assert budget_line(102_400, 0, 0, 1024) is None  # a whole number of updates: nothing to say
    assert budget_line(5_000, 2_048, 2, 1024) == "5,120 steps: 5 updates of 1,024 (requested 5,000)"  # resumed
    assert planned_steps(1_000, 2_048, 1024) == 2_048  # already past the budget: no update runs


def rows(n: int, batch: int = 1024) -> list[dict[str, float]]:
    return [
        {"time/steps": batch * (i + 1), "time/updates": i + 1, "time/fps": 5000.0, "train/kl": 0.01,
         "rollout/ep_return_mean": math.nan if i == 0 else 20.0 + i}
        for i in range(n)
    ]  # fmt: skip


def test_without_a_terminal_the_bar_is_a_plain_line_every_few_updates() -> None:
    file = io.StringIO()
    console = Console(file=file, width=80, force_terminal=False)
    assert not console.is_terminal
    with RunLogger(None, total_steps=100_000, batch_size=1024, console=console) as logger:
        for row in rows(98):
            logger.log(row)
    lines = file.getvalue().splitlines()
    assert lines[0] == "100,352 steps: 98 updates of 1,024 (requested 100,000)"
    progress = lines[1:]
    # about 20 lines (every 5th update of 98) and the last; each complete, longer than 80 but not wrapped
    assert [line.split()[1] for line in progress[-2:]] == ["97,280/100,352", "100,352/100,352"]
    assert 18 <= len(progress) <= 22
    for line in progress:
        assert re.fullmatch(r"trpo [\d,]+/100,352 steps  5,000 steps/s  return \S+  KL 0\.0100  "
                            r"\d:\d\d:\d\d elapsed, (\d:\d\d:\d\d|-:--:--) left", line), line  # fmt: skip
    assert "━" not in file.getvalue() and "\x1b" not in file.getvalue()


def test_in_a_terminal_the_bar_is_drawn() -> None:
    file = io.StringIO()
    console = Console(file=file, width=80, force_terminal=True, color_system=None)
    with RunLogger(None, total_steps=2048, batch_size=1024, console=console) as logger:
        for row in rows(2):
            logger.log(row)
    out = file.getvalue()
    assert "trpo ━" in out and "2,048/2,048" in out and "requested" not in out


def test_train_announces_the_rounded_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "CartPole-v1", "--total-steps", "1000", "--n-envs", "2", "--n-steps", "128",
            "--eval-episodes", "0", "--table-every", "0", "--run-dir", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "1,024 steps: 4 updates of 256 (requested 1,000)"
    assert out[1].startswith("trpo 256/1,024 steps") and out[4].startswith("trpo 1,024/1,024 steps")


def test_without_a_terminal_an_alarm_is_one_line_and_no_batch_size_means_every_update() -> None:
    from trpo.run.health import FiredAlarm

    file = io.StringIO()
    console = Console(file=file, width=80, force_terminal=False)
    with RunLogger(None, total_steps=3072, console=console) as logger:  # no batch_size: no rounding known
        for row in rows(3):
            logger.log(row)
        logger.alarm(FiredAlarm("kl_spike", 3, 3072, "an accepted update moved the policy far " * 3, "lower max_kl"))
    lines = file.getvalue().splitlines()
    assert [line.split()[1] for line in lines[:3]] == ["1,024/3,072", "2,048/3,072", "3,072/3,072"]
    assert len(lines) == 4 and lines[3].startswith("alarm kl_spike (update 3, step 3,072): ") and len(lines[3]) > 80
