"""Durable small writes: write, fsync, rename, fsync the folder; and files that belong to the service user.

A rename within one folder is atomic on every Linux file system: a reader (or a restart after a
power cut) sees the old file or the new one, never a mix. fsync of the file before the rename and of
the folder after it make the new name survive a power cut once the call returns.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.modelstore.faults import step


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes, mode: int = 0o644, crash_step: str | None = None) -> None:
    """Create or replace ``path`` with ``data`` and fsync it (not atomic: for files in a folder not yet published)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        half = len(data) // 2
        os.write(fd, data[:half])
        if crash_step:
            step(crash_step)  # a torn write: half the bytes on disk
        view = memoryview(data)[half:]
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: Path, data: bytes, crash_prefix: str, mode: int = 0o644) -> None:
    """``path`` holds ``data`` afterwards, durably; a crash at any moment leaves the old content or the new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write_synced(tmp, data, mode, crash_step=f"{crash_prefix}.half-written")
    adopt(tmp)
    step(f"{crash_prefix}.written")
    os.replace(tmp, path)
    step(f"{crash_prefix}.renamed")
    fsync_dir(path.parent)


def adopt(path: Path) -> None:
    """Give ``path`` to the owner of its folder when we run as root (``sudo edge-daemon model install``):
    the service runs as its own user and must be able to read the models and rewrite the registry."""
    if os.geteuid() != 0:
        return
    owner = path.parent.stat()
    if owner.st_uid != 0 or owner.st_gid != 0:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
