"""The run directory: the one place that names the files of a run.

    config.yaml          the exact, complete config of the run (re-runnable with --config)
    progress.csv         one row per update, every diagnostic
    events.out.tfevents* TensorBoard, the same keys
    checkpoint/          the latest checkpoint (model.safetensors + state.json), written atomically
    best/                the model of the best periodic evaluation (--save-best), with best.json
    summary.json         the final deterministic evaluation and timing
    policy.onnx, video.mp4, diagnostics.png   what `trpo export`, `record` and `plot` write by default

`trpo train`, `--resume`, `eval`, `plot`, `record`, `export` and `compare` all find a run's files here.

A run directory written by someone else is data: `is_run` recognises a trpo run by its files (not by a
name), `clear` deletes only what a trpo run creates, `check_links` refuses run files that are symbolic
links (so nothing is written or deleted outside the directory through one), `lock` keeps a second
writer out, and `check_output` keeps `export`, `record` and `plot` from overwriting by surprise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trpo.errors import UserError

CONFIG = "config.yaml"
PROGRESS = "progress.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint"
BEST = "best"
BEST_RECORD = "best.json"
EVENTS = "events.out.tfevents*"
POLICY = "policy.onnx"
VIDEO = "video.mp4"
DIAGNOSTICS = "diagnostics.png"
LOCK = ".trpo.lock"
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
FORMAT = "trpo-checkpoint"
"""The `format` entry of every checkpoint's state.json: the mark of a checkpoint written by trpo."""
OWN_FILES = (CONFIG, PROGRESS, SUMMARY, BEST_RECORD, LOCK, STATE_FILE, MODEL_FILE)
"""Files of a run that no output of `export`, `record` or `plot` may replace."""
MARK_BYTES = 1 << 20
"""The most of config.yaml or state.json read to recognise a run."""


@dataclass(frozen=True)
class RunDir:
    """A run directory (it may not exist yet) and the paths of its files."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def progress(self) -> Path:
        return self.path / PROGRESS

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def policy(self) -> Path:
        return self.path / POLICY

    @property
    def video(self) -> Path:
        return self.path / VIDEO

    @property
    def diagnostics(self) -> Path:
        return self.path / DIAGNOSTICS

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    def is_run(self) -> bool:
        """Whether `trpo train` wrote here: config.yaml is a mapping of trpo config fields (with `algo`)
        and, if there is a checkpoint, its state.json carries trpo's format mark. A file name alone
        (another tool's config.yaml or checkpoint/) is not enough."""
        return self.not_a_run_reason() is None

    def not_a_run_reason(self) -> str | None:
        """Why this directory is not a trpo run (None when it is one)."""
        from trpo.config.schema import ENV_KEYS, FIELD_NAMES  # config is below run: no cycle

        data = _read_small_yaml(self.config)
        if data is None:
            return f"{self.config} is missing or is not a small YAML mapping"
        if "algo" not in data or not set(data) <= FIELD_NAMES | set(ENV_KEYS):
            return f"{self.config} is not a trpo config (keys other than TRPOConfig fields, or no algo)"
        for directory in (self.checkpoint, self.path / f"{CHECKPOINT}.old", self.best):
            if directory.is_symlink() or (directory.exists() and not _has_format_mark(directory / STATE_FILE)):
                return f"{directory} is not a trpo checkpoint (no state.json with format {FORMAT!r})"
        return None

    def run_files(self) -> Iterator[Path]:
        """The files and directories a training run creates here (what `--force` replaces)."""
        for name in (CONFIG, PROGRESS, SUMMARY, CHECKPOINT, f"{CHECKPOINT}.old", f"{CHECKPOINT}.tmp", BEST):
            yield self.path / name
        yield from self.path.glob(EVENTS)

    def existing_run_files(self) -> list[Path]:
        return [p for p in self.run_files() if p.exists() or p.is_symlink()]

    def check_links(self) -> None:
        """Refuse (one line) run files that are symbolic links: trpo writes, appends and deletes only real
        files inside the run directory, never through a link to somewhere else."""
        for target in [*self.run_files(), self.lock_file]:
            if target.is_symlink():
                raise UserError(
                    f"{target} is a symbolic link (to {os.readlink(target)}); trpo writes only real files inside "
                    "the run directory: remove the link or choose another run directory"
                )

    def clear(self) -> None:
        """Delete what a previous trpo run wrote here, and nothing else: refused (one line, nothing deleted)
        unless the directory is recognised as a trpo run (`is_run`) and none of its files is a link."""
        if not self.existing_run_files():
            return
        self.check_links()
        reason = self.not_a_run_reason()
        if reason is not None:
            raise UserError(
                f"--force replaces only a trpo run, and {self.path} is not one ({reason}); nothing was deleted: "
                "choose another --run-dir"
            )
        for target in self.run_files():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory's writer lock (reentrant within a process). A second process gets one
        line naming the holder's pid; a lock left by a killed process does not block (the kernel
        releases an flock with its holder)."""
        with _writer_lock(self.path):
            yield

    def check_output(self, out: Path, force: bool, flag: str = "--out") -> None:
        """See the module-level `check_output`."""
        check_output(out, force, flag)


def _read_small_yaml(path: Path) -> dict[str, Any] | None:
    """A small YAML mapping read safely (None: missing, a link, too big, not YAML, not a mapping)."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        if path.stat().st_size > MARK_BYTES:
            return None
        from trpo.config.safe_yaml import load_yaml_text

        data = load_yaml_text(path.read_bytes(), str(path))
    except (OSError, UserError):
        return None
    return data if isinstance(data, dict) else None


def _has_format_mark(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        if path.stat().st_size > 64 * MARK_BYTES:
            return False
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'"format": "{FORMAT}"'.encode() in head  # save_checkpoint writes the format entry first


_HELD: dict[str, tuple[int, int]] = {}
"""Locks this process holds: resolved run directory -> (file descriptor, depth)."""


@contextlib.contextmanager
def _writer_lock(directory: Path) -> Iterator[None]:
    key = str(directory.resolve())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth - 1)
        return
    fd = _acquire(directory)
    _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _acquire(directory: Path) -> int:
    import fcntl

    path = directory / LOCK
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link; remove it (trpo's lock file is a plain file)") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(
            f"{directory} is being written by another trpo process (pid {holder}); wait for it to finish or "
            "stop it, then resume"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def inside_run(path: Path) -> bool:
    """Whether `path` is one of a run's own files (config.yaml, progress.csv, a checkpoint's files, ...)."""
    resolved = path.resolve() if path.exists() or path.is_symlink() else path.parent.resolve() / path.name
    if resolved.name in (STATE_FILE, MODEL_FILE):
        return True  # a checkpoint's (of a run, or a model saved with save())
    parent = resolved.parent
    if resolved.name in OWN_FILES or resolved.match(EVENTS):
        return (parent / CONFIG).is_file() or (parent / CHECKPOINT).is_dir() or (parent / PROGRESS).is_file()
    return False


def check_output(out: Path, force: bool, flag: str = "--out") -> None:
    """Refuse (one line) an output path that `export`, `record` or `plot` must not write: a run's own file
    (always), a symbolic link, a directory, a path under a file, or an existing file without --force."""
    if inside_run(out):
        raise UserError(f"{flag} {out} is a file of a trpo run (its config, log or checkpoint); choose another name")
    if out.is_symlink():
        raise UserError(f"{flag} {out} is a symbolic link; give a plain file path")
    if out.is_dir():
        raise UserError(f"{flag} {out} is a directory; give a file name inside it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {out}: {parent} is a file, not a directory")
            break
    if out.exists() and not force:
        raise UserError(f"{flag} {out} exists; pass --force to replace it, or choose another name")
