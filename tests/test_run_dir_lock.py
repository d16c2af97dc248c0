"""One writer per run directory, nothing written outside it, nothing deleted by surprise (issue 17,
findings 7, 8, 11, 12): the writer lock, symbolic links, --force, outputs of export/record/plot/compare,
and the file system's refusals (read-only, a file on the path, a full disk) as one line and exit 2."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from conftest import copy_run, require, train_tiny_run
from test_checkpoint_schema import SMALL, one_error_line
from trpo import load
from trpo.errors import UserError
from trpo.run import checkpoint
from trpo.run.run_dir import RunDir, check_output


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("template"))


@pytest.fixture
def run(template: Path, tmp_path: Path) -> Path:
    return copy_run(template, tmp_path)


def main(argv: list[str]) -> int:
    from trpo.cli.main import main as trpo_main

    return trpo_main(argv)


# --- finding 7: one writer per run directory


def hold_lock(run: Path) -> int:
    """A child process (forked: no imports) that takes the run's lock and waits to be killed; its pid."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            with RunDir(run).lock():
                os.write(write, b"locked")
                time.sleep(120)
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 6) == b"locked"
    os.close(read)
    return pid


def test_a_second_writer_is_refused_naming_the_holder(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = hold_lock(run)
    try:
        one_error_line(capsys, ["train", "--resume", str(run), "--total-steps", "64"], f"pid {holder}")
        one_error_line(capsys, ["train", "CartPole-v1", "--run-dir", str(run), "--force", *SMALL], f"pid {holder}")
        assert load(run).num_steps == 32 and (run / "config.yaml").is_file()
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)
    assert (run / ".trpo.lock").read_text().strip() == str(holder)  # the killed holder's stale lock file
    assert main(["train", "--resume", str(run), "--total-steps", "64", "--quiet"]) == 0  # does not block
    assert load(run).num_steps == 64


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with RunDir(tmp_path).lock(), RunDir(tmp_path).lock():
        assert (tmp_path / ".trpo.lock").read_text().strip() == str(os.getpid())


# --- finding 8: symbolic links, --force


def test_resume_refuses_a_symlinked_progress_csv(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("precious\n")
    (run / "progress.csv").unlink()
    (run / "progress.csv").symlink_to(outside)
    one_error_line(capsys, ["train", "--resume", str(run), "--total-steps", "64"], "progress.csv", "symbolic link")
    assert outside.read_text() == "precious\n"


def test_a_symlinked_checkpoint_is_refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoint", elsewhere)
    (run / "checkpoint").symlink_to(elsewhere)
    one_error_line(capsys, ["train", "--resume", str(run), "--total-steps", "64"], "checkpoint", "symbolic link")
    with pytest.raises(checkpoint.CheckpointError, match="symbolic link"):
        checkpoint.save_checkpoint(run / "checkpoint", {}, {})
    assert (elsewhere / "state.json").is_file()


def test_force_over_a_symlinked_checkpoint_deletes_nothing(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoint", elsewhere)
    (run / "checkpoint").symlink_to(elsewhere)
    before = sorted(p.name for p in run.iterdir())
    one_error_line(
        capsys, ["train", "CartPole-v1", "--run-dir", str(run), "--force", *SMALL, "--total-steps", "32"], "symbolic"
    )
    assert sorted(p.name for p in run.iterdir()) == before
    assert (run / "config.yaml").is_file() and (run / "progress.csv").is_file() and (run / "summary.json").is_file()


def test_force_never_clears_another_tools_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    (other / "checkpoint").mkdir(parents=True)
    (other / "checkpoint" / "weights.pt").write_bytes(b"not ours")
    (other / "config.yaml").write_text("learning_rate: 0.1\nbatch: 32\n")
    one_error_line(
        capsys, ["train", "CartPole-v1", "--run-dir", str(other), "--force", *SMALL, "--total-steps", "32"],
        "only a trpo run", "not a trpo config", "nothing was deleted",
    )  # fmt: skip
    assert (other / "checkpoint" / "weights.pt").read_bytes() == b"not ours"
    assert (other / "config.yaml").is_file()


def test_force_with_a_trpo_config_but_a_foreign_checkpoint(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "checkpoint" / "state.json").write_text('{"framework": "another"}')
    argv = ["train", "CartPole-v1", "--run-dir", str(run), "--force", *SMALL, "--total-steps", "32"]
    one_error_line(capsys, argv, "only a trpo run")
    assert (run / "checkpoint" / "model.safetensors").is_file()


def test_force_replaces_a_trpo_run_and_keeps_other_files(run: Path) -> None:
    (run / "notes.txt").write_text("mine")
    assert RunDir(run).is_run()
    assert main(["train", "CartPole-v1", "--run-dir", str(run), "--force", *SMALL, "--total-steps", "32"]) == 0
    assert (run / "notes.txt").read_text() == "mine"


# --- finding 12: outputs never overwrite by surprise, never a run's own file


def test_check_output_rules(run: Path, tmp_path: Path) -> None:
    for own in ("config.yaml", "progress.csv", "summary.json", "checkpoint/state.json", "checkpoint/model.safetensors"):
        with pytest.raises(UserError, match="file of a trpo run"):
            check_output(run / own, force=True)
    existing = tmp_path / "curves.png"
    existing.write_bytes(b"png")
    with pytest.raises(UserError, match="exists; pass --force"):
        check_output(existing, force=False)
    check_output(existing, force=True)
    with pytest.raises(UserError, match="is a directory"):
        check_output(tmp_path, force=True)
    with pytest.raises(UserError, match="is a file, not a directory"):
        check_output(existing / "x.png", force=True)
    link = tmp_path / "link.png"
    link.symlink_to(existing)
    with pytest.raises(UserError, match="symbolic link"):
        check_output(link, force=True)


def test_plot_refuses_to_overwrite_without_force(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(run)]) == 0
    one_error_line(capsys, ["plot", str(run)], "curves.png", "--force")
    assert main(["plot", str(run), "--force"]) == 0


def test_export_never_overwrites_the_runs_config(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("onnx", "export")
    before = (run / "config.yaml").read_bytes()
    one_error_line(capsys, ["export", str(run), "--out", str(run / "config.yaml"), "--force"], "file of a trpo run")
    assert (run / "config.yaml").read_bytes() == before
    (run / "policy.onnx").write_bytes(b"old")
    one_error_line(capsys, ["export", str(run)], "policy.onnx", "--force")
    assert (run / "policy.onnx").read_bytes() == b"old"


def test_record_refuses_to_overwrite_without_force(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("imageio", "record")
    (run / "video.mp4").write_bytes(b"old")
    one_error_line(capsys, ["record", str(run)], "video.mp4", "--force")
    assert (run / "video.mp4").read_bytes() == b"old"


# --- finding 11: the file system's refusals are one line


def test_run_dir_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    one_error_line(
        capsys, ["train", "CartPole-v1", "--run-dir", str(tmp_path / "afile" / "run"), *SMALL], "run directory"
    )


def test_run_dir_on_a_read_only_file_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    one_error_line(
        capsys, ["train", "CartPole-v1", "--run-dir", str(tmp_path / "ro" / "run"), *SMALL], "Read-only file system"
    )


def test_compare_out_naming_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("x")
    one_error_line(capsys, ["compare", "CartPole-v1", "--out", str(tmp_path / "out")], "--out", "is a file")


def test_plot_of_a_binary_progress_csv(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / "progress.csv").write_bytes(bytes(range(256)) * 10)
    one_error_line(capsys, ["plot", str(run)], "progress.csv")


def test_plot_of_a_progress_csv_with_a_128kb_field(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (run / "progress.csv").read_text()
    (run / "progress.csv").write_text(text + '"' + "x" * (128 * 1024 + 10) + '"\n')
    one_error_line(capsys, ["plot", str(run)], "progress.csv")


def test_a_full_disk_is_one_line_and_the_previous_checkpoint_survives(
    run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(checkpoint, "write_synced", full_disk)
    start = time.perf_counter()
    one_error_line(
        capsys, ["train", "--resume", str(run), "--total-steps", "64", "--checkpoint-every", "1", "--quiet"],
        "No space left on device", "previous checkpoint is intact",
    )  # fmt: skip
    assert time.perf_counter() - start < 60
    monkeypatch.undo()
    assert load(run).num_steps == 32  # the checkpoint before the failed write
    assert not (run / "checkpoint.tmp").exists()
