"""W&B tracking in offline mode: the run directory W&B writes holds every update's statistics, the
config, the run's name and group, and the final summary (read back from W&B's own record file)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require
from trpo import TRPO, TRPOConfig

require("wandb", "wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

from trpo.run.tracking import WandbTracker  # noqa: E402


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of a .wandb file: a 7-byte header, then LevelDB-log chunks (crc 4, length 2, type 1) in
    32 KiB blocks; types 1 full, 2 first, 3 middle, 4 last."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, partial = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(partial + payload if kind == 4 else payload)
            yield record
        elif kind in (2, 3):
            partial = payload if kind == 2 else partial + payload
        else:
            break


def key_of(item: object) -> str:
    return getattr(item, "key", "") or "/".join(getattr(item, "nested_key", []))


def test_offline_run_holds_the_logged_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "group-a" / "run-1"
    tracker = WandbTracker(project="trpo-test")
    config = TRPOConfig(n_envs=2, n_steps=64, checkpoint_every=0, max_kl=0.015)
    agent = TRPO("CartPole-v1", config, seed=0).learn(384, run_dir=run_dir, callback=tracker)
    tracker.finish({"mean_return": 42.5, "total_steps": agent.num_steps})
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    deadline = time.monotonic() + 60  # W&B's service writes the file asynchronously: wait for its exit record
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(files[0])):
        assert time.monotonic() < deadline, "W&B never finished writing its run file"
        time.sleep(0.2)
    history, summary, run_info, config_values = [], {}, None, {}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({key_of(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({key_of(item): json.loads(item.value_json) for item in record.summary.update})
        elif kind == "run":
            run_info = record.run
            config_values.update({key_of(item): item.value_json for item in record.run.config.update})
        elif kind == "config":
            config_values.update({key_of(item): item.value_json for item in record.config.update})
    assert run_info is not None and run_info.display_name == "run-1" and run_info.run_group == "group-a"
    assert [h["_step"] for h in history] == [128, 256, 384]
    header = (run_dir / "progress.csv").read_text().splitlines()[0].split(",")
    logged = set(history[-1]) - {"_step", "_runtime", "_timestamp"}
    assert {"train/kl", "rollout/ep_return_mean", "time/steps"} <= logged <= set(header)  # progress.csv's keys
    assert summary["mean_return"] == 42.5 and summary["total_steps"] == 384
    assert "0.015" in config_values.get("max_kl", "")


def test_cli_track_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trpo.cli.main import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "runs" / "cp"
    argv = ["train", "CartPole-v1", "--track", "wandb", "--n-envs", "2", "--n-steps", "64", "--total-steps", "256",
            "--eval-episodes", "2", "--quiet", "--run-dir", str(run_dir)]  # fmt: skip
    assert main(argv) == 0
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1
    deadline = time.monotonic() + 60
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(files[0])):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    summary: dict = {}
    for record in wandb_records(files[0]):
        if record.WhichOneof("record_type") == "summary":
            summary.update({key_of(i): json.loads(i.value_json) for i in record.summary.update})
    written = json.loads((run_dir / "summary.json").read_text())
    assert summary["mean_return"] == pytest.approx(written["mean_return"]) and summary["total_steps"] == 256
    assert "wandb" not in (run_dir / "config.yaml").read_text()  # tracking is never stored in the run
