"""Same seed, same result: the progress.csv of reference runs, bit for bit, before and after a change.

A refactor that moves code must not change a single number. This script trains the reference runs
(the CartPole-v1 and Pendulum-v1 presets, and PPO and NPG on CartPole-v1, seed 0, each with the
command line a user types), drops the wall-clock columns (time/fps, time/*_s, sampler/worker_s_*: they
differ run to run) and hashes every other value of progress.csv exactly as written. `--record FILE` writes the hashes;
`--check FILE` trains again and compares, printing the first differing row and column when one differs.

    python benchmarks/same_result.py --record benchmarks/same_result.json    # on the commit before
    python benchmarks/same_result.py --check benchmarks/same_result.json     # on the commit after

Exit status 0 when every run matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS: dict[str, list[str]] = {
    "CartPole-v1 trpo preset": ["CartPole-v1"],
    "Pendulum-v1 trpo preset": ["Pendulum-v1"],
    "CartPole-v1 ppo": ["CartPole-v1", "--algo", "ppo", "--total-steps", "40960"],
    "CartPole-v1 npg": ["CartPole-v1", "--algo", "npg", "--total-steps", "40960"],
}


def wall_clock(column: str) -> bool:
    """Columns that measure time rather than learning: they differ between any two runs."""
    return column == "time/fps" or (
        column.startswith(("time/", "sampler/worker_s_")) and column.endswith(("_s", "_max", "_min"))
    )


def learning_rows(progress: Path) -> tuple[list[str], list[list[str]]]:
    """progress.csv without its wall-clock columns: (header, rows), values as written."""
    with progress.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    keep = [i for i, name in enumerate(header) if not wall_clock(name)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


def fingerprint(header: list[str], rows: list[list[str]]) -> str:
    digest = hashlib.sha256()
    for row in [header, *rows]:
        digest.update(("\x1f".join(row) + "\n").encode())
    return digest.hexdigest()


def train(args: list[str], run_dir: Path) -> Path:
    command = [sys.executable, "-m", "trpo", "train", *args, "--seed", "0", "--run-dir", str(run_dir), "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir / "progress.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, help="write the reference hashes (and rows) to this JSON file")
    mode.add_argument("--check", type=Path, help="compare against the reference hashes in this JSON file")
    opts = parser.parse_args()
    reference = json.loads(opts.check.read_text()) if opts.check else {}
    results: dict[str, dict[str, object]] = {}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, args) in enumerate(RUNS.items()):
            header, rows = learning_rows(train(args, Path(tmp) / f"run{i}"))
            results[name] = {"rows": len(rows), "sha256": fingerprint(header, rows), "header": header, "values": rows}
            if opts.check:
                want = reference[name]
                same = want["sha256"] == results[name]["sha256"]
                ok &= same
                print(f"{name}: {len(rows)} updates, {'identical' if same else 'DIFFERENT'}")
                if not same:
                    print("  " + first_difference(want, header, rows))
            else:
                print(f"{name}: {len(rows)} updates, sha256 {results[name]['sha256'][:16]}")
    if opts.record:
        opts.record.write_text(json.dumps(results) + "\n")
    return 0 if ok else 1


def first_difference(want: dict[str, object], header: list[str], rows: list[list[str]]) -> str:
    if want["header"] != header:
        return f"columns differ: {sorted(set(want['header']) ^ set(header))}"  # type: ignore[arg-type]
    for r, (a, b) in enumerate(zip(want["values"], rows, strict=False)):  # type: ignore[call-overload]
        for column, x, y in zip(header, a, b, strict=True):
            if x != y:
                return f"update {r + 1}, {column}: {x} before, {y} now"
    return f"{want['rows']} updates before, {len(rows)} now"


if __name__ == "__main__":
    sys.exit(main())
