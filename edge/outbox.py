"""Store-and-forward: every event is durable on disk before it is published, and deleted only
once the broker has acknowledged it.

SQLite with a rollback journal and ``synchronous=FULL``: a committed row survives power loss
and ``kill -9`` (WAL with NORMAL can lose the last commits on power loss). Event sequence
numbers are allocated in the same transaction as the row, so they never repeat across restarts.

Bounded: at ``max_messages`` the oldest telemetry is dropped first, then (only if nothing but
events is left) the oldest event; every drop is counted and reported in telemetry.

If the state directory is read-only or the disk is full, the outbox says so and carries on in
memory, so live publishing never stops because of storage.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    qos INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('dropped', 0);
"""


@dataclass(frozen=True)
class Row:
    """One stored message waiting for its acknowledgement."""

    id: int
    kind: str
    topic: str
    payload: str
    qos: int
    seq: int = 0  # events only: the device's sequence number


class Outbox:
    """Thread-safe: the frame loop adds, the MQTT thread reads and acknowledges."""

    def __init__(self, path: Path, max_messages: int) -> None:
        self.path = path
        self.max_messages = max_messages
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._db = self._open(path)

    @property
    def durable(self) -> bool:
        return self.problem is None

    def _open(self, path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            return db
        except (OSError, sqlite3.Error) as exc:
            return self._memory(f"{path}: {exc}; events are kept in memory only until this is fixed")

    def _memory(self, problem: str, copy_from: sqlite3.Connection | None = None) -> sqlite3.Connection:
        self.problem = problem
        log.error("outbox not durable: %s", problem)
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.executescript(SCHEMA)
        if copy_from is not None:
            try:
                rows = copy_from.execute("SELECT id, kind, topic, payload, qos FROM messages").fetchall()
                db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", rows)
                for key, value in copy_from.execute("SELECT key, value FROM meta").fetchall():
                    db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
            except sqlite3.Error as exc:
                log.error("outbox: could not copy stored messages to memory: %s", exc)
        return db

    def _write(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``work`` in one transaction; on a storage failure move to memory and retry once."""
        for attempt in (1, 2):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                    self._db.execute("COMMIT")
                    return result
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if attempt == 2 or self.problem is not None:
                    raise
                self._db = self._memory(f"{self.path}: {exc} (disk full or read-only?)", copy_from=self._db)
        raise AssertionError("unreachable")

    def _make_room(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
        excess = count - self.max_messages + 1
        if excess <= 0:
            return
        victims = db.execute(
            "SELECT id FROM messages ORDER BY (kind = 'event'), id LIMIT ?", (excess,)
        ).fetchall()
        db.executemany("DELETE FROM messages WHERE id = ?", victims)
        db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (len(victims),))
        log.warning("outbox full (%d messages): dropped %d oldest (telemetry first)", self.max_messages, len(victims))

    def add_event(self, topic: str, build: Callable[[int, str], str]) -> Row:
        """Allocate the next sequence number and an event id, build the payload, store it durably."""
        event_id = str(uuid.uuid4())

        def work(db: sqlite3.Connection) -> Row:
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'last_seq'")
            (seq,) = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            payload = build(int(seq), event_id)
            self._make_room(db)
            cur = db.execute("INSERT INTO messages (kind, topic, payload, qos) VALUES ('event', ?, ?, 1)", (topic, payload))
            return Row(int(cur.lastrowid or 0), "event", topic, payload, 1, int(seq))

        with self._lock:
            row: Row = self._write(work)
        return row

    def add(self, kind: str, topic: str, payload: str, qos: int) -> Row:
        """Store a non-event message (telemetry, command replies)."""

        def work(db: sqlite3.Connection) -> Row:
            self._make_room(db)
            cur = db.execute("INSERT INTO messages (kind, topic, payload, qos) VALUES (?, ?, ?, ?)", (kind, topic, payload, qos))
            return Row(int(cur.lastrowid or 0), kind, topic, payload, qos)

        with self._lock:
            row: Row = self._write(work)
        return row

    def pending_after(self, row_id: int, limit: int) -> list[Row]:
        """Stored messages with id > ``row_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, qos FROM messages WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit)
            ).fetchall()
        return [Row(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]

    def ack(self, row_id: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._write(lambda db: db.execute("DELETE FROM messages WHERE id = ?", (row_id,)))

    def max_id(self) -> int:
        with self._lock:
            (value,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()
        return int(value)

    def counts(self) -> dict[str, Any]:
        """Pending and dropped counts for telemetry."""
        with self._lock:
            (pending,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
            (dropped,) = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return {"pending": int(pending), "dropped": int(dropped), "durable": self.durable}

    def close(self) -> None:
        with self._lock:
            self._db.close()
