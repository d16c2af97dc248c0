"""Planted bugs: does the test suite catch each plausible bug that once slipped through?

Each bug below is a small edit of a copy of `src/trpo` (a line the way a tired contributor might write
it). For each, the tests that should catch it run against the copy; the bug is *caught* when they fail.
The unedited copy runs the same tests first, and must pass (else the result means nothing).

    python benchmarks/planted_bugs.py            # every bug; exit 1 if one survives
    python benchmarks/planted_bugs.py --list
    python benchmarks/planted_bugs.py --only eval-same-seed fvp-first-k

`make mutation` runs this, then mutmut's generated mutants over the math (see the Makefile). Neither
is part of CI: each bug costs a test run (about 10-60 s here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _deps import require

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    file: str
    """Path under src/trpo."""
    old: str
    new: str
    tests: tuple[str, ...]
    """pytest node ids or files (relative to the repository root) that must catch it."""


BUGS = (
    Bug(
        "advantages-not-centred",
        "core/advantages.py",
        "return (x - x.mean()) / (x.std() + eps)",
        "return x / (x.std() + eps)",
        ("tests/test_update.py", "tests/test_gae.py"),
    ),
    Bug(
        "fvp-first-k",
        "algos/npg.py",
        "return torch.randperm(n, generator=self.generator)[:k]",
        "return torch.arange(k)",
        ("tests/test_update.py",),
    ),
    Bug(
        "eval-same-seed",
        "run/evaluation.py",
        "        for episode_seed in seeds:\n",
        "        for episode_seed in seeds[:1] * len(seeds):\n",
        ("tests/test_evaluation.py",),
    ),
    Bug(
        "episode-return-never-reset",
        "sampling/rollout.py",
        "        self.episode_return[ended] = 0.0\n",
        "",
        ("tests/test_episode_stats.py",),
    ),
    Bug(
        "reward-scaler-reset-on-termination-only",
        "sampling/rollout.py",
        "self.reward_scaler(rollout.raw_rewards, rollout.ended)",
        "self.reward_scaler(rollout.raw_rewards, rollout.terminated)",
        ("tests/test_episode_stats.py",),
    ),
    Bug(
        "reward-scaler-reset-on-termination-only (worker samplers)",
        "sampling/workers.py",
        "self.reward_scaler(rollout.raw_rewards, rollout.ended)",
        "self.reward_scaler(rollout.raw_rewards, rollout.terminated)",
        ("tests/test_episode_stats.py",),
    ),
    Bug(
        "no-damping",
        "algos/npg.py",
        "return damped(make_fvp(self.actor, params_k, fvp_obs, self.dist, fvp_mask), cfg.cg_damping)",
        "return make_fvp(self.actor, params_k, fvp_obs, self.dist, fvp_mask)",
        ("tests/test_update.py",),
    ),
    Bug(
        "damped-ignores-damping",
        "core/trust_region.py",
        "return lambda v: fvp(v) + damping * v",
        "return lambda v: fvp(v)",
        ("tests/test_trust_region.py",),
    ),
    Bug(
        "surrogate-sign-flipped",
        "algos/npg.py",
        "gain = (torch.exp(dist.log_prob(p, actions) - log_prob_k) * adv).mean()",
        "gain = -(torch.exp(dist.log_prob(p, actions) - log_prob_k) * adv).mean()",
        ("tests/test_update.py",),
    ),
    Bug(
        "surrogate-ratio-inverted",
        "algos/npg.py",
        "gain = (torch.exp(dist.log_prob(p, actions) - log_prob_k) * adv).mean()",
        "gain = (torch.exp(log_prob_k - dist.log_prob(p, actions)) * adv).mean()",
        ("tests/test_update.py",),
    ),
    Bug(
        "line-search-rejects-every-step",
        "algos/trpo.py",
        "if search.theta is None or search.candidate is None:  # keep pi_k",
        "if True:  # keep pi_k",
        ("tests/test_update.py", "tests/test_sde.py"),
    ),
)


def run_tests(src: Path, tests: tuple[str, ...]) -> tuple[bool, float]:
    """Run `tests` with `src` first on the import path; (passed, seconds)."""
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    return result.returncode == 0, time.perf_counter() - start


def plant(bug: Bug, src: Path) -> None:
    """Copy the package to `src/trpo` and apply `bug` there (the original stays untouched)."""
    shutil.rmtree(src / "trpo", ignore_errors=True)
    shutil.copytree(ROOT / "src" / "trpo", src / "trpo", ignore=shutil.ignore_patterns("__pycache__"))
    path = src / "trpo" / bug.file
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"error: bug {bug.name!r}: the line to edit is not in src/trpo/{bug.file} exactly once")
    path.write_text(text.replace(bug.old, bug.new))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="names of the bugs to plant (default: all)")
    parser.add_argument("--list", action="store_true", help="list the bugs and exit")
    args = parser.parse_args(argv)
    bugs = [b for b in BUGS if args.only is None or b.name in args.only]
    if args.list or not bugs:
        for b in BUGS:
            print(f"{b.name}: src/trpo/{b.file} -> {' '.join(b.tests)}")
        return 0 if args.list else 2
    require(__file__, ["pytest", "hypothesis"])  # the test suite it runs
    survivors: list[str] = []
    baseline_passed: set[tuple[str, ...]] = set()
    with tempfile.TemporaryDirectory(prefix="trpo-planted-") as tmp:
        src = Path(tmp)
        for bug in bugs:
            if bug.tests not in baseline_passed:
                plant(Bug(bug.name, bug.file, bug.old, bug.old, bug.tests), src)  # the unedited copy
                if not run_tests(src, bug.tests)[0]:
                    print(f"error: the tests for {bug.name!r} fail without the bug: {' '.join(bug.tests)}")
                    return 1
                baseline_passed.add(bug.tests)
            plant(bug, src)
            passed, seconds = run_tests(src, bug.tests)
            verdict = "SURVIVED" if passed else "caught"
            print(f"{verdict:8}  {bug.name}  ({seconds:.0f} s: {' '.join(bug.tests)})", flush=True)
            if passed:
                survivors.append(bug.name)
    print(f"{len(bugs) - len(survivors)} of {len(bugs)} planted bugs caught")
    if survivors:
        print("survived:", ", ".join(survivors))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
