"""Check that the commands behind the figures in BENCHMARKS.md and docs/ still mean what they say.

A figure's command (a `python benchmarks/...` or `trpo compare` line in a fenced code block) must be
pinned by a comment line directly above it (other pins or comments may stand between):

    # config: sampler=sync max_kl=0.04            what the command resolves to today, for every env
    # config Hopper-v5: n_steps=256                ... for one env of the command
    # measured at 1a2b3c4: <why it differs today>  the commit whose code and presets it ran with

`config` pins are resolved with trpo's own parsing, as `trpo train` would (the env's preset unless
`--no-preset`, then the flags after `--`): `benchmarks/returns.py` runs resolve their `trpo train`
arguments; `benchmarks/throughput.py` resolves its `preset` mode (the env's preset) when it runs it. A field that
resolves to another value fails the check. `measured at` pins must name a commit of this repository.
A command with no pin fails: a figure nobody can reproduce is not a claim.

    python benchmarks/check_claims.py                      # BENCHMARKS.md and docs/*.md
    python benchmarks/check_claims.py FILE.md ...

Parsing only, no training: CI runs it (tests/test_claims.py).
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^(python benchmarks/\S+\.py|trpo compare)\b")
CONFIG_PIN = re.compile(r"^#\s*config(?:\s+(?P<env>[\w/.:-]+))?\s*:\s*(?P<fields>.*)$")
COMMIT_PIN = re.compile(r"^#\s*measured at\s+(?P<commit>[0-9a-f]{7,40})\b")


@dataclass
class Claim:
    """One figure's command and its pins."""

    file: Path
    line: int
    command: str
    fields: dict[str | None, dict[str, str]] = field(default_factory=dict)
    """env id (None: every env of the command) -> field -> value as written."""
    commits: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file}:{self.line}"


def claims_in(path: Path) -> Iterator[Claim]:
    """The commands in fenced code blocks of a Markdown file, with the pin comments right above each."""
    in_block = False
    pins: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        i += 1
        if text.startswith("```"):
            in_block, pins = not in_block, []
            continue
        if not in_block:
            continue
        if text.startswith("#"):
            pins.append(text)
            continue
        if not COMMAND.match(text):
            pins = []
            continue
        start = i
        while text.endswith("\\") and i < len(lines):  # a command continued over several lines
            text = text[:-1] + " " + lines[i].strip()
            i += 1
        claim = Claim(path, start, text.split("  #")[0].strip())
        for pin in pins:
            if m := CONFIG_PIN.match(pin):
                pairs = dict(p.split("=", 1) for p in m["fields"].split() if "=" in p)
                claim.fields.setdefault(m["env"], {}).update(pairs)
            elif m := COMMIT_PIN.match(pin):
                claim.commits.append(m["commit"])
        pins = []
        yield claim


def option(argv: list[str], name: str) -> list[str]:
    """The values after `--name` up to the next option."""
    if name not in argv:
        return []
    values = []
    for arg in argv[argv.index(name) + 1 :]:
        if arg.startswith("--"):
            break
        values.append(arg)
    return values


def resolved_configs(command: str) -> dict[str, object]:
    """env id -> the TRPOConfig the command trains with today (returns.py; throughput.py's preset mode)."""
    from trpo.cli.train import _parse_train
    from trpo.config.presets import preset_config

    argv = shlex.split(command)
    script = Path(argv[1]).name if argv[0] == "python" else ""
    if script == "returns.py":
        split = argv.index("--") if "--" in argv else len(argv)
        ours, train_flags = argv[:split], argv[split + 1 :]
        steps = option(ours, "--steps")
        configs: dict[str, object] = {}
        for env_id in option(ours, "--envs"):
            args = _parse_train([env_id, "--total-steps", *steps, *train_flags])[0]
            configs[env_id] = args.hp
        return configs
    modes = option(argv, "--modes")
    if script == "throughput.py" and (not modes or "preset" in modes):  # pins state the preset mode's config
        return {env_id: preset_config(env_id)[0] for env_id in option(argv, "--envs")}
    return {}


def same(value: object, written: str) -> bool:
    """Whether a config value equals a value written in a pin (YAML syntax: 0.04, true, [64, 64])."""
    expected = yaml.safe_load(written)
    if isinstance(value, tuple | list) and isinstance(expected, list):
        return list(value) == expected
    if isinstance(value, bool) or isinstance(expected, bool):
        return value == expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return math.isclose(value, expected, rel_tol=1e-12)
    return str(value) == str(expected)


def commit_exists(commit: str) -> bool | None:
    """True/False if git knows/does not know the commit; None if git cannot tell (no git, shallow clone)."""
    try:
        shallow = subprocess.run(
            ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        if shallow.returncode != 0 or shallow.stdout.strip() == "true":
            return None
        found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.returncode == 0


def check(claim: Claim) -> list[str]:
    """The problems of one claim (empty if it holds)."""
    if not claim.fields and not claim.commits:
        pin = "`# config: FIELD=VALUE ...` or `# measured at COMMIT`"
        return [f"{claim.where()}: `{claim.command}` has no pin ({pin})"]
    problems = [
        f"{claim.where()}: `# measured at {c}`: no such commit in this repository"
        for c in claim.commits
        if commit_exists(c) is False
    ]
    if not claim.fields:
        return problems
    try:
        configs = resolved_configs(claim.command)
    except Exception as exc:  # a command trpo refuses is a broken claim, reported with the others
        return [*problems, f"{claim.where()}: `{claim.command}` does not resolve: {exc}"]
    if not configs:
        return [*problems, f"{claim.where()}: `# config` pins need a returns.py or throughput.py (preset) command"]
    for env_key, pairs in claim.fields.items():
        if env_key is not None and env_key not in configs:
            problems.append(f"{claim.where()}: `# config {env_key}`: the command does not train {env_key}")
            continue
        for env_id, config in configs.items():
            if env_key not in (None, env_id):
                continue
            for name, written in pairs.items():
                if not hasattr(config, name):
                    problems.append(f"{claim.where()}: `{name}` is not a config field")
                elif not same(getattr(config, name), written):
                    problems.append(
                        f"{claim.where()}: {env_id} resolves to {name}={getattr(config, name)!r} today, "
                        f"the pin says {written}"
                    )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="Markdown files (default: BENCHMARKS.md, docs/*.md)")
    args = parser.parse_args(argv)
    files = args.files or [ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
    claims = [c for f in files for c in claims_in(f)]
    problems = [p for c in claims for p in check(c)]
    for problem in problems:
        print(problem)
    pinned = sum(bool(c.fields) for c in claims)
    print(f"{len(claims)} commands, {pinned} resolved against today's config, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
