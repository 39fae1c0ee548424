"""Folders the unprivileged `nobody` can read: tests run install.sh as nobody, and a fresh clone may sit in
a folder (mktemp -d, a home directory) that only its owner can enter."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def readable_tmpdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="conveyor-bundle-"))
    path.chmod(0o755)
    return path


@contextmanager
def readable_copy(folder: Path) -> Iterator[Path]:
    """A copy of ``folder`` that anyone can read, removed afterwards."""
    where = readable_tmpdir()
    try:
        copy = where / folder.name
        shutil.copytree(folder, copy)
        copy.chmod(0o755)
        yield copy
    finally:
        shutil.rmtree(where)
