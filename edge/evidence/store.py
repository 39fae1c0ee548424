"""Records on disk: one folder per record (JPEG files plus ``meta.json``) within a byte budget.

A record id is the UTC time it was made plus six random hex digits (``20261124T031455123Z-3fa9c2``),
so names sort by age, never collide, and are checked against one pattern before any path is
built from them: a name from a URL can never walk out of the folder.

Writes come from one thread (the feature's worker); the console reads from its own, so the index
is guarded by a lock. Nothing is synced: losing the last snapshot in a power cut is acceptable,
an fsync per file on an SD card is not. A record whose ``meta.json`` is missing (cut short) is
removed at start-up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_ID = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]{6}$")
# A frame of a record, as the console names it: the record (its key frame) or record_<index>.
FRAME_NAME = re.compile(r"^(\d{8}T\d{9}Z-[0-9a-f]{6})(?:_(\d{1,2}))?$")
FILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}\.jpg$")
META = "meta.json"


def new_record_id(wall: float) -> str:
    """A fresh record id for something that happened at ``wall`` (epoch seconds)."""
    when = dt.datetime.fromtimestamp(wall, dt.UTC)
    return f"{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def parse_frame_name(name: str) -> tuple[str, int | None] | None:
    """``record`` or ``record_<index>`` as (record, index or None); None when it is not such a name."""
    match = FRAME_NAME.match(name)
    if match is None:
        return None
    return match.group(1), (int(match.group(2)) if match.group(2) is not None else None)


class Records:
    """Record folders under ``root``, oldest first out when their total passes ``budget_bytes``."""

    def __init__(self, root: Path, budget_bytes: int) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()  # oldest first
        self._lock = threading.Lock()
        self.evicted = 0
        self._scanned = False

    # --- reading (any thread) ---------------------------------------------------------------------

    def scan(self) -> None:
        """Index what is on disk (at start-up, on the worker thread); drop records cut short."""
        with self._lock:
            self._sizes.clear()
            if self.root.is_dir():
                for folder in sorted(self.root.iterdir()):
                    if not RECORD_ID.match(folder.name) or not folder.is_dir():
                        continue
                    if not (folder / META).is_file():
                        shutil.rmtree(folder, ignore_errors=True)
                        continue
                    self._sizes[folder.name] = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            self._scanned = True

    def ids(self, newest_first: bool = True) -> list[str]:
        with self._lock:
            names = list(self._sizes)
        return names[::-1] if newest_first else names

    def __contains__(self, record: object) -> bool:
        with self._lock:
            return record in self._sizes

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def file(self, record: str, name: str) -> Path | None:
        """The path of file ``name`` of ``record``, or None unless both are valid names and it exists."""
        if not RECORD_ID.match(record) or not (FILE_NAME.match(name) or name == META):
            return None
        path = self.root / record / name
        return path if path.is_file() else None

    def meta(self, record: str) -> dict[str, Any] | None:
        path = self.file(record, META)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # --- writing (the owner's worker thread) -----------------------------------------------------

    def add(self, record: str, files: dict[str, bytes], meta: dict[str, Any]) -> None:
        """Write a record (its files, then ``meta.json`` last) and evict the oldest beyond the budget."""
        if not RECORD_ID.match(record) or not all(FILE_NAME.match(name) for name in files):
            raise ValueError(f"invalid record {record!r} or file names {sorted(files)}")
        folder = self.root / record
        folder.mkdir(parents=True, exist_ok=True)
        size = 0
        for name, data in files.items():
            (folder / name).write_bytes(data)
            size += len(data)
        meta_bytes = _encode(meta)
        (folder / META).write_bytes(meta_bytes)
        size += len(meta_bytes)
        with self._lock:
            self._sizes[record] = size
        self._evict()

    def update_meta(self, record: str, meta: dict[str, Any]) -> None:
        """Replace ``meta.json`` of an existing record (write aside, then rename: never half a file)."""
        folder = self.root / record
        if not RECORD_ID.match(record) or not folder.is_dir():
            raise KeyError(record)
        tmp = folder / (META + ".tmp")
        data = _encode(meta)
        tmp.write_bytes(data)
        os.replace(tmp, folder / META)

    def remove(self, record: str) -> None:
        if not RECORD_ID.match(record):
            return
        shutil.rmtree(self.root / record, ignore_errors=True)
        with self._lock:
            self._sizes.pop(record, None)

    def _evict(self) -> None:
        while True:
            with self._lock:
                total = sum(self._sizes.values())
                if total <= self.budget_bytes or not self._sizes:
                    return
                oldest = next(iter(self._sizes))
            self.remove(oldest)
            self.evicted += 1
            log.debug("%s: evicted %s (over the %d byte budget)", self.root, oldest, self.budget_bytes)


def _encode(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, separators=(",", ":")).encode("utf-8")
