"""benchmarks/check_claims.py: every figure's command in BENCHMARKS.md and docs/ is pinned, and the
`# config` pins hold with today's presets and flags (parsing only, no training)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import check_claims  # noqa: E402


def problems(tmp_path: Path, markdown: str) -> list[str]:
    path = tmp_path / "claims.md"
    path.write_text(markdown)
    return [p for c in check_claims.claims_in(path) for p in check_claims.check(c)]


def test_the_repository_claims_hold() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "check_claims.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 problems" in result.stdout


def test_a_pin_that_no_longer_resolves_fails(tmp_path: Path) -> None:
    """The HalfCheetah-v5 preset samples in worker processes today: a row that claims in-process fails,
    and passes once the command pins --sampler sync."""
    command = "python benchmarks/returns.py --envs HalfCheetah-v5 --steps 1000 -- --checkpoint-every 0"
    stale = f"```\n# config: sampler=sync log_std_init=-2.0\n{command}\n```\n"
    found = problems(tmp_path, stale)
    assert len(found) == 1 and "sampler='process'" in found[0] and "the pin says sync" in found[0]
    assert problems(tmp_path, stale.replace("-- --checkpoint-every 0", "-- --sampler sync")) == []


def test_unpinned_commands_unknown_fields_and_commits_fail(tmp_path: Path) -> None:
    markdown = (
        "```\npython benchmarks/returns.py --envs CartPole-v1 --steps 1000\n```\n"
        "```\n# config: no_such_field=1\npython benchmarks/returns.py --envs CartPole-v1 --steps 1000\n```\n"
        "```\n# measured at 0000000deadbeef\npython benchmarks/scaling.py\n```\n"
        "```\n# config Hopper-v5: n_steps=256\npython benchmarks/returns.py --envs CartPole-v1 --steps 1000\n```\n"
    )
    found = problems(tmp_path, markdown)
    assert "has no pin" in found[0]
    assert "`no_such_field` is not a config field" in found[1]
    assert any("no such commit" in p for p in found) or check_claims.commit_exists("0000000deadbeef") is None
    assert "does not train Hopper-v5" in found[-1]


def test_the_config_of_the_flags_after_the_separator_and_no_preset(tmp_path: Path) -> None:
    markdown = (
        "```\n# config: n_envs=16 n_steps=128 normalize_reward=true hidden_sizes=[32,32]\n"
        "python benchmarks/returns.py --envs CartPole-v1 --steps 1000 -- --no-preset --hidden-sizes 32 32\n```\n"
    )
    assert problems(tmp_path, markdown) == []
