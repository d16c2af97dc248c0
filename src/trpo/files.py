"""Writing files so that a crash never leaves half of one: fsynced writes and atomic replacement."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    write_synced(tmp, text.encode())
    os.replace(tmp, path)
