"""Store-and-forward for events: durable on disk before they are published, deleted once the
broker has acknowledged them, replayed after any outage or restart.

Written for a year on an SD card:

* SQLite in WAL mode with an exclusive lock and 1 KiB pages: an event costs one commit, one
  fsync and a few KiB. Deleting acknowledged events is batched and not synced on its own (a
  later synced commit or checkpoint carries it): after a power cut the last second of
  acknowledged events may be sent again, with their original ``event_id``, which subscribers
  de-duplicate anyway. Telemetry never touches the disk.
* One owner: only the MQTT transport's thread calls the methods that touch the database; the
  counters other threads read are plain attributes.
* Sequence numbers are allocated in the same transaction as the row, belong to a ``seq_epoch``
  (a random id made with the store) and never go backwards while the process lives. If the file
  vanishes or the disk fails, the rows and counters move to a fresh file (or, if that fails too,
  to memory) and storage is retried periodically: nothing is stranded or renumbered, and a new
  epoch after a restart tells a subscriber that numbering began again rather than that events
  were lost.
* Bounded: at ``max_messages`` the oldest events are dropped, counted, and summarised in the
  log at most once a minute.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    body TEXT NOT NULL,
    qos INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
ACK_BATCH = 256  # acknowledged rows deleted in one transaction ...
ACK_DELAY_S = 1.0  # ... or after this long, whichever comes first
CHECK_FILE_S = 5.0  # how often to check the database file is still there
RETRY_DURABLE_S = 30.0  # while in memory, how often to try the disk again
OVERFLOW_LOG_S = 60.0

# (seq, event_id, seq_epoch) -> the JSON body to store and send
BodyBuilder = Callable[[int, str, str], str]


@dataclass(frozen=True)
class StoredEvent:
    """One stored event waiting for its acknowledgement."""

    id: int  # storage order; only meaningful within one process
    topic: str
    body: str
    qos: int
    seq: int


@dataclass(frozen=True)
class OutboxCounts:
    pending: int
    dropped: int
    durable: bool


class StorageFailed(Exception):
    """The database file cannot be used (missing, full, read-only, corrupt)."""


def _connect_file(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA page_size=1024")  # only takes effect on a new file: small events, small pages
        db.execute("PRAGMA locking_mode=EXCLUSIVE")  # one process; also lets WAL skip the -shm file
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        return db
    except (OSError, sqlite3.Error) as exc:
        raise StorageFailed(f"{path}: {exc}") from exc


def _is_storage_error(exc: sqlite3.Error) -> bool:
    """Full, read-only, missing or corrupt storage; not a constraint violation (that would be a bug)."""
    return isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError)) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError))


def _connect_memory() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    db.executescript(SCHEMA)
    return db


class Outbox:
    """Durable event queue; see the module docstring for what it promises."""

    def __init__(self, path: Path, max_messages: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_messages = max_messages
        self._clock = clock
        self.problem: str | None = None
        self._acked: list[int] = []
        self._acked_since = 0.0
        self._next_file_check = 0.0
        self._next_retry = 0.0
        self._overflow_unlogged = 0
        self._overflow_logged_at = float("-inf")
        self.dropped = 0
        self.pending_count = 0
        self.last_seq = 0
        self.epoch = ""
        self._last_id = 0
        self._inode: int | None = None
        try:
            self._db = _connect_file(path)
            self._adopt_file_state()
        except (StorageFailed, OSError, sqlite3.Error) as exc:
            self._db = _connect_memory()
            self.epoch = uuid.uuid4().hex
            self.problem = str(exc)
            self._next_retry = clock() + RETRY_DURABLE_S
            log.error("outbox not durable: %s; events are kept in memory until storage works again", exc)

    # --- state -----------------------------------------------------------------------------------

    @property
    def durable(self) -> bool:
        return self.problem is None

    def counts(self) -> OutboxCounts:
        """Safe from any thread: reads counters only."""
        return OutboxCounts(self.pending_count, self.dropped, self.durable)

    @property
    def newest_id(self) -> int:
        return self._last_id

    def _meta(self, db: sqlite3.Connection) -> dict[str, str]:
        return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM store_meta")}

    def _adopt_file_state(self) -> None:
        """Read counters from a freshly opened file (migrating the 0.1 layout if it is there)."""
        self._migrate_v0(self._db)
        meta = self._meta(self._db)
        self.epoch = meta.get("epoch") or uuid.uuid4().hex
        self.last_seq = int(meta.get("last_seq", "0"))
        self.dropped = int(meta.get("dropped", "0"))
        self._db.execute("INSERT OR REPLACE INTO store_meta VALUES ('epoch', ?)", (self.epoch,))
        (count, top) = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM events").fetchone()
        self.pending_count, self._last_id = int(count), int(top)
        self._inode = os.stat(self.path).st_ino

    @staticmethod
    def _migrate_v0(db: sqlite3.Connection) -> None:
        """Version 0.1 kept events (JSON with a 'replayed' field) and telemetry in `messages`."""
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "messages" not in tables:
            return
        import json

        db.execute("BEGIN IMMEDIATE")
        try:
            old_meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
            for row_id, topic, payload, qos in db.execute(
                    "SELECT id, topic, payload, qos FROM messages WHERE kind = 'event' ORDER BY id").fetchall():
                data = json.loads(payload)
                data.pop("replayed", None)
                db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                           (row_id, topic, json.dumps(data, separators=(",", ":")), qos, int(data.get("seq", 0))))
            for key in ("last_seq", "dropped"):
                db.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)", (key, str(old_meta.get(key, 0))))
            db.execute("DROP TABLE messages")
            db.execute("DROP TABLE IF EXISTS meta")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- writing ---------------------------------------------------------------------------------

    def add(self, topic: str, build: BodyBuilder, qos: int = 1) -> StoredEvent:
        """Allocate the next seq and an event id, build the body, store it durably (one fsync)."""
        return self.add_many([(topic, build)], qos)[0]

    def add_many(self, items: Sequence[tuple[str, BodyBuilder]], qos: int = 1) -> list[StoredEvent]:
        """Store several events in one transaction: one fsync for all of them."""
        if not items:
            return []
        for attempt in (1, 2, 3):
            try:
                return self._insert(items, qos)
            except sqlite3.Error as exc:
                if not self.durable or not _is_storage_error(exc):
                    raise
                problem = f"{self.path}: {exc} (disk full, read-only or removed?)"
                if attempt == 1:
                    self._replace_storage(problem)
                else:
                    self._went_to_memory(problem)
        raise AssertionError("unreachable: the memory store accepts every insert")

    def _insert(self, items: Sequence[tuple[str, BodyBuilder]], qos: int) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        seq, last_id, dropped = self.last_seq, self._last_id, 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for topic, build in items:
                seq += 1
                last_id += 1
                body = build(seq, str(uuid.uuid4()), self.epoch)
                db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?)", (last_id, topic, body, qos, seq))
                stored.append(StoredEvent(last_id, topic, body, qos, seq))
            excess = self.pending_count + len(stored) - self.max_messages
            if excess > 0:
                # The oldest go first. Acknowledged-but-not-yet-deleted rows are oldest of all.
                self._flush_acks_in(db)
                dropped = db.execute("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)",
                                     (excess,)).rowcount
            db.executemany("INSERT OR REPLACE INTO store_meta VALUES (?, ?)",
                           (("last_seq", str(seq)), ("dropped", str(self.dropped + dropped))))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.last_seq, self._last_id = seq, last_id
        self.pending_count += len(stored) - dropped
        if dropped:
            self.dropped += dropped
            self._note_overflow(dropped)
        return stored

    def _note_overflow(self, dropped: int) -> None:
        self._overflow_unlogged += dropped
        now = self._clock()
        if now - self._overflow_logged_at >= OVERFLOW_LOG_S:
            log.warning("outbox full (%d events kept): dropped the %d oldest since the last report (%d in all)",
                        self.max_messages, self._overflow_unlogged, self.dropped)
            self._overflow_unlogged, self._overflow_logged_at = 0, now

    # --- reading and acknowledging ---------------------------------------------------------------

    def pending(self, after: int, limit: int, up_to: int | None = None) -> list[StoredEvent]:
        """Stored events with ``after < id <= up_to``, oldest first, not yet acknowledged."""
        rows = self._db.execute(
            "SELECT id, topic, body, qos, seq FROM events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after, up_to if up_to is not None else self._last_id, limit + len(self._acked)),
        ).fetchall()
        acked = set(self._acked)
        return [StoredEvent(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows if r[0] not in acked][:limit]

    def acknowledge(self, row_id: int) -> None:
        """The broker has it. Deleted in a later batch (see :meth:`maintain`)."""
        if not self._acked:
            self._acked_since = self._clock()
        self._acked.append(row_id)
        self.pending_count = max(0, self.pending_count - 1)
        if len(self._acked) >= ACK_BATCH:
            self.flush_acknowledged()

    def flush_acknowledged(self) -> None:
        """Delete acknowledged rows in one transaction that does not sync by itself."""
        if not self._acked:
            return
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._flush_acks_in(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            if self.durable and _is_storage_error(exc):
                self._went_to_memory(f"{self.path}: {exc} (disk full, read-only or removed?)")

    def _flush_acks_in(self, db: sqlite3.Connection) -> None:
        db.executemany("DELETE FROM events WHERE id = ?", ((i,) for i in self._acked))
        self._acked = []

    # --- upkeep ------------------------------------------------------------------------------------

    def maintain(self) -> None:
        """Periodic work for the owner thread: batched deletes, a missing file, retrying the disk."""
        now = self._clock()
        if self._acked and now - self._acked_since >= ACK_DELAY_S:
            self.flush_acknowledged()
        if self._overflow_unlogged and now - self._overflow_logged_at >= OVERFLOW_LOG_S:
            self._note_overflow(0)
        if self.durable and now >= self._next_file_check:
            self._next_file_check = now + CHECK_FILE_S
            try:
                vanished = os.stat(self.path).st_ino != self._inode
            except OSError:
                vanished = True
            if vanished:
                self._replace_storage(f"{self.path}: the database file was removed or replaced")
        elif not self.durable and now >= self._next_retry:
            self._next_retry = now + RETRY_DURABLE_S
            try:
                fresh = _connect_file(self.path)
            except StorageFailed:
                return
            if self._move_to(fresh):
                log.warning("outbox durable again at %s: %d pending event(s) moved to disk", self.path, self.pending_count)
                self.problem = None

    def _replace_storage(self, problem: str) -> None:
        """Move every row and counter to a new file at the same path, else to memory."""
        log.error("outbox: %s; moving %d pending event(s) to a new store", problem, self.pending_count)
        rows = self._snapshot()
        if rows is None:  # the old store cannot even be read: keep it and hope the next insert works
            self._went_to_memory(problem)
            return
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            fresh = _connect_file(self.path)
        except (OSError, StorageFailed) as exc:
            self._went_to_memory(f"{problem}; and a new file failed too ({exc})", rows)
            return
        if not self._switch_to(fresh, rows, durable_target=True):
            self._went_to_memory(problem, rows)

    def _went_to_memory(self, problem: str, rows: list[tuple[object, ...]] | None = None) -> None:
        self.problem = problem
        self._next_retry = self._clock() + RETRY_DURABLE_S
        log.error("outbox not durable: %s; events are kept in memory until storage works again", problem)
        if rows is None:
            rows = self._snapshot() or []
        self._switch_to(_connect_memory(), rows, durable_target=False)

    def _move_to(self, target: sqlite3.Connection) -> bool:
        rows = self._snapshot()
        return rows is not None and self._switch_to(target, rows, durable_target=True)

    def _snapshot(self) -> list[tuple[object, ...]] | None:
        """Every pending row of the current store (acknowledged ones deleted first), or None if unreadable."""
        try:
            if self._acked:
                self._flush_acks_in(self._db)
        except sqlite3.Error:
            self._acked = []  # they will be sent again: a duplicate, never a loss
        try:
            return list(self._db.execute("SELECT id, topic, body, qos, seq FROM events ORDER BY id").fetchall())
        except sqlite3.Error as exc:
            log.error("outbox: cannot read the old store (%s)", exc)
            return None

    def _switch_to(self, target: sqlite3.Connection, rows: list[tuple[object, ...]], durable_target: bool) -> bool:
        """Write ``rows`` and the counters into ``target`` and make it the store."""
        try:
            target.execute("BEGIN IMMEDIATE")
            target.execute("DELETE FROM events")
            target.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
            target.executemany("INSERT OR REPLACE INTO store_meta VALUES (?, ?)",
                               (("epoch", self.epoch), ("last_seq", str(self.last_seq)), ("dropped", str(self.dropped))))
            target.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("outbox: cannot write the new store (%s)", exc)
            target.close()
            return False
        old, self._db = self._db, target
        try:
            old.close()
        except sqlite3.Error:
            pass
        self.pending_count = len(rows)
        if durable_target:
            self._inode = os.stat(self.path).st_ino
        return True

    def close(self) -> None:
        """Flush deletes; if the store is in memory, make one last attempt to save it to disk."""
        if not self.durable:
            try:
                fresh = _connect_file(self.path)
                if self._move_to(fresh):
                    self.problem = None
            except StorageFailed as exc:
                if self.pending_count:
                    log.error("outbox: %d unsent event(s) lost at exit: storage still failing (%s)", self.pending_count, exc)
        try:
            self.flush_acknowledged()
        finally:
            self._db.close()
