"""The durable outbox: survives kill -9, stays bounded, never strands or renumbers events when its storage fails."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outbox import Outbox


def body(seq: int, event_id: str, epoch: str, text: str = "e") -> str:
    return json.dumps({"seq": seq, "id": event_id, "epoch": epoch, "text": text})


def add(box: Outbox, text: str = "e") -> int:
    return box.add("t/event", lambda s, e, ep: body(s, e, ep, text)).seq


def pending_seqs(box: Outbox) -> list[int]:
    return [row.seq for row in box.pending(0, 100_000)]


def test_sequence_numbers_and_epoch_continue_across_restarts(tmp_path: Path) -> None:
    """seq is allocated durably: a reopened outbox continues where the last one stopped, in the same epoch."""
    box = Outbox(tmp_path / "o.sqlite", 100)
    assert [add(box) for _ in range(3)] == [1, 2, 3]
    epoch = box.epoch
    for row in box.pending(0, 10):
        box.acknowledge(row.id)
    box.close()
    again = Outbox(tmp_path / "o.sqlite", 100)
    assert add(again) == 4 and again.epoch == epoch
    assert json.loads(again.pending(0, 10)[0].body)["epoch"] == epoch
    assert again.counts().pending == 1 and again.durable


def test_a_full_outbox_drops_the_oldest_events_counts_them_and_logs_a_summary(tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    """At the limit the oldest events go; one WARNING line, not one per dropped event."""
    box = Outbox(tmp_path / "o.sqlite", 10)
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        for i in range(60):
            add(box, f"e{i}")
    assert pending_seqs(box) == list(range(51, 61))
    assert box.counts().dropped == 50 and box.counts().pending == 10
    assert len([r for r in caplog.records if "outbox full" in r.getMessage()]) == 1


def test_rows_committed_before_kill_9_survive_intact(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-stream leaves a consistent database with every committed row."""
    path = tmp_path / "o.sqlite"
    repo = str(Path(__file__).resolve().parent.parent)
    code = (
        f"import sys, json; sys.path.insert(0, {repo!r})\n"
        "from pathlib import Path\n"
        "from edge.outbox import Outbox\n"
        f"box = Outbox(Path({str(path)!r}), 100000)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    box.add('t', lambda s, e, ep: json.dumps({'seq': s}))\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = 0
    for line in proc.stdout:
        committed = int(line)
        if committed >= 200:
            break
    proc.kill()
    proc.wait(10)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    (rows, top) = db.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
    assert rows >= committed
    (last_seq,) = db.execute("SELECT value FROM store_meta WHERE key='last_seq'").fetchone()
    assert int(last_seq) == rows == top  # the counter and the rows were committed together


def test_acknowledged_rows_are_deleted_in_batches(tmp_path: Path) -> None:
    """An acknowledgement does not write at once: rows leave the file in one later transaction."""
    path = tmp_path / "o.sqlite"
    box = Outbox(path, 1000)
    for _ in range(5):
        add(box)
    rows = box.pending(0, 10)
    for row in rows[:3]:
        box.acknowledge(row.id)
    assert box.counts().pending == 2 and [r.seq for r in box.pending(0, 10)] == [4, 5]
    box._db.execute("SELECT 1")  # the same connection still holds all five until the batch is flushed
    assert box._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 5
    box.flush_acknowledged()
    assert box._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2


def test_an_unusable_state_directory_falls_back_to_memory_then_back_to_disk(tmp_path: Path) -> None:
    """The state path cannot be created: events are kept in memory, numbered on, and moved to disk once it works."""
    state = tmp_path / "state"
    state.write_text("a file where the folder should be")
    box = Outbox(state / "o.sqlite", 100)
    assert not box.durable and "state" in (box.problem or "")
    assert [add(box) for _ in range(3)] == [1, 2, 3]
    state.unlink()
    box._next_retry = 0.0
    box.maintain()
    assert box.durable and add(box) == 4
    box.close()
    assert pending_seqs(Outbox(state / "o.sqlite", 100)) == [1, 2, 3, 4]


def test_a_deleted_state_directory_strands_nothing_and_keeps_the_numbering(tmp_path: Path) -> None:
    """The database vanishes while open: rows and counters move to a new file; a restart continues the numbering."""
    path = tmp_path / "state" / "o.sqlite"
    box = Outbox(path, 100)
    for _ in range(3):
        add(box)
    box.acknowledge(box.pending(0, 1)[0].id)
    epoch = box.epoch
    shutil.rmtree(tmp_path / "state")
    box._next_file_check = 0.0
    box.maintain()
    assert path.exists() and box.durable
    assert add(box) == 4
    box.close()
    again = Outbox(path, 100)
    assert again.epoch == epoch and pending_seqs(again) == [2, 3, 4] and add(again) == 5


def test_a_full_disk_moves_the_store_without_losing_or_renumbering_rows(tmp_path: Path) -> None:
    """SQLITE_FULL on insert (the file may not grow): rows and counters move on, the insert succeeds."""
    box = Outbox(tmp_path / "o.sqlite", 100_000)
    for _ in range(3):
        add(box)
    page_count = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {page_count}")  # exactly what a full disk does to this file
    for _ in range(200):
        add(box, "x" * 2000)
    assert pending_seqs(box) == list(range(1, 204))


def test_the_first_layout_is_migrated(tmp_path: Path) -> None:
    """A 0.1 outbox (events and telemetry in `messages`, payloads with 'replayed') keeps its events and numbering."""
    path = tmp_path / "o.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, topic TEXT, payload TEXT, qos INTEGER);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta VALUES ('last_seq', 7), ('dropped', 2);
        INSERT INTO messages (kind, topic, payload, qos) VALUES ('event', 't/event', '{"seq":6,"replayed":false}', 1);
        INSERT INTO messages (kind, topic, payload, qos) VALUES ('telemetry', 't/telemetry', '{}', 0);
        INSERT INTO messages (kind, topic, payload, qos) VALUES ('event', 't/event', '{"seq":7,"replayed":false}', 1);
    """)
    db.commit()
    db.close()
    box = Outbox(path, 100)
    assert [(r.seq, json.loads(r.body)) for r in box.pending(0, 10)] == [(6, {"seq": 6}), (7, {"seq": 7})]
    assert add(box) == 8 and box.counts().dropped == 2
