"""AlarmStore: the alarm records in the state directory, so an unacknowledged alarm survives a restart.

Written for an SD card: one small JSON file, rewritten only when a record changes (an alarm raised,
cleared or acknowledged: a few times a day on a healthy line), atomically (a temporary file, fsync,
rename, fsync of the folder) so a power cut leaves either the old or the new file, never half of one.
The write happens on the store's own thread: the frame loop hands over the records and goes on.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.alarms.logic import Alarm, AlarmState

log = logging.getLogger(__name__)
FORMAT = "conveyor-watch/alarms/1"


def to_json(records: Mapping[str, Alarm]) -> str:
    return json.dumps({"format": FORMAT, "alarms": {roi: {
        "state": str(a.state), "since": a.since, "activated_at": a.activated_at, "acked_by": a.acked_by,
        "acked_at": a.acked_at} for roi, a in sorted(records.items())}}, indent=1)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def from_json(text: str) -> dict[str, Alarm]:
    """Parse a stored file; raises ValueError (with what is wrong) for anything else."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("alarms"), dict):
        raise ValueError(f"not a {FORMAT} file")
    records = {}
    for roi, item in data["alarms"].items():
        if not isinstance(item, dict):
            raise ValueError(f"alarm {roi!r} is not an object")
        by = item.get("acked_by")
        records[str(roi)] = Alarm(AlarmState(str(item.get("state"))), _number(item.get("since")), _number(item.get("activated_at")),
                                  by if isinstance(by, str) else None, _number(item.get("acked_at")))
    return records


class AlarmStore:
    """Loads once at start-up; :meth:`save` returns at once and the latest records reach the disk soon after."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: str | None = None
        self._written: str | None = None
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="alarm-store", daemon=True)
        self.writes = 0

    def load(self) -> dict[str, Alarm]:
        """The stored records (empty when there is no file). A damaged file is kept aside, not trusted."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("alarm records %s cannot be read (%s): alarms start normal", self.path, exc)
            return {}
        try:
            records = from_json(text)
        except (ValueError, TypeError) as exc:
            aside = self.path.with_name(self.path.name + ".damaged")
            log.error("alarm records %s are damaged (%s): kept as %s, alarms start normal", self.path, exc, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return {}
        self._written = to_json(records)
        return records

    def save(self, records: Mapping[str, Alarm]) -> None:
        """Hand over the current records; the store's thread writes the latest of them."""
        text = to_json(records)
        with self._cond:
            if text == (self._pending or self._written):
                return
            self._pending = text
            if not self._thread.is_alive() and not self._closing:
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over is on disk (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif self._pending is not None:  # never started (or gone): write in the caller's thread
            self._write(self._pending)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closing)
                text = self._pending
                if text is None:
                    return
            self._write(text)
            with self._cond:
                if self._pending == text:
                    self._pending = None
                self._cond.notify_all()

    def _write(self, text: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._written = text
            self.writes += 1
        except OSError as exc:
            log.error("alarm records could not be saved to %s: %s (they stay in memory)", self.path, exc)
