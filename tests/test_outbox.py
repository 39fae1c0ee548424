"""The durable outbox: survives kill -9, stays bounded (telemetry goes first), degrades to memory on storage faults."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.outbox import Outbox


def add_event(outbox: Outbox, text: str = "e") -> int:
    return outbox.add_event("t/event", lambda seq, eid: json.dumps({"seq": seq, "id": eid, "text": text})).seq


def test_sequence_numbers_continue_across_restarts(tmp_path: Path) -> None:
    """seq is allocated durably: a reopened outbox continues where the last one stopped, even after acks."""
    box = Outbox(tmp_path / "o.sqlite", 100)
    assert [add_event(box) for _ in range(3)] == [1, 2, 3]
    for row in box.pending_after(0, 10):
        box.ack(row.id)
    box.close()
    again = Outbox(tmp_path / "o.sqlite", 100)
    assert add_event(again) == 4
    assert again.durable and again.counts() == {"pending": 1, "dropped": 0, "durable": True}


def test_full_outbox_drops_oldest_telemetry_before_any_event_and_counts_it(tmp_path: Path) -> None:
    """At the limit, telemetry is sacrificed first; events go only when nothing else is left."""
    box = Outbox(tmp_path / "o.sqlite", 10)
    for i in range(5):
        add_event(box, f"e{i}")
        box.add("telemetry", "t/telemetry", f"tel{i}", 0)
    for i in range(5, 10):
        add_event(box, f"e{i}")
    kinds = [row.kind for row in box.pending_after(0, 100)]
    assert len(kinds) == 10 and kinds.count("event") == 10
    assert box.counts()["dropped"] == 5
    add_event(box, "e10")
    texts = [json.loads(r.payload)["text"] for r in box.pending_after(0, 100)]
    assert texts[0] == "e1" and texts[-1] == "e10" and len(texts) == 10
    assert box.counts()["dropped"] == 6


def test_rows_committed_before_kill_9_survive_intact(tmp_path: Path) -> None:
    """A writer process killed with SIGKILL mid-stream leaves a consistent database with every committed row."""
    path = tmp_path / "o.sqlite"
    repo = str(Path(__file__).resolve().parent.parent)
    code = (
        f"import sys, json; sys.path.insert(0, {repo!r})\n"
        "from edge.outbox import Outbox\n"
        f"box = Outbox(__import__('pathlib').Path({str(path)!r}), 100000)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    box.add_event('t', lambda s, e: json.dumps({'seq': s}))\n"
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
    (rows,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    assert rows >= committed
    (last_seq,) = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
    assert last_seq == rows  # the counter and the rows were committed together
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_unwritable_state_directory_falls_back_to_memory_and_says_so(tmp_path: Path) -> None:
    """A state directory that cannot be created (read-only file system): not durable, but working."""
    box = Outbox(Path("/proc/conveyor-watch-test/outbox.sqlite"), 100)
    assert not box.durable and "events are kept in memory only" in (box.problem or "")
    assert add_event(box) == 1 and box.counts() == {"pending": 1, "dropped": 0, "durable": False}


def test_disk_full_moves_to_memory_without_losing_stored_rows(tmp_path: Path) -> None:
    """SQLITE_FULL on insert (a full disk): existing rows are carried over to memory and the insert succeeds."""
    box = Outbox(tmp_path / "o.sqlite", 100000)
    for _ in range(3):
        add_event(box)
    page_count = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {page_count}")  # the file may not grow: exactly what a full disk does
    for _ in range(200):
        add_event(box, "x" * 2000)
    assert not box.durable and "full" in (box.problem or "")
    seqs = [json.loads(r.payload)["seq"] for r in box.pending_after(0, 1000)]
    assert seqs == list(range(1, 204))
