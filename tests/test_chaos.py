"""Chaos: random SIGKILLs of the daemon and of the broker while events flow; every event arrives, once by id.

``make soak`` runs the same test with many more rounds (CHAOS_ROUNDS=200).
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
from pathlib import Path

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import Subscriber, validate

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.output_side]
STORED = re.compile(r"event #(\d+) stored")
# A drop every 2 s: an alert and a recovery every 2 s of stream time, all day.
DROPS = [{"start_s": 0.5 + 2.0 * k, "duration_s": 1.0} for k in range(20_000)]
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "16"))


def stored(logs: list[Path]) -> set[int]:
    return {int(n) for log in logs if log.exists() for n in STORED.findall(log.read_text(errors="replace"))}


def test_random_sigkills_of_daemon_and_broker_lose_no_event(tmp_path: Path) -> None:
    """Rounds of SIGKILL to the daemon or to the broker (persistent, saving every change), then restarts:
    a persistent-session subscriber receives every seq the daemon ever stored, each under one event id."""
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "20261126")))
    # Mosquitto saves its queues on every change: a SIGKILL of the broker loses nothing it acknowledged.
    broker = Mosquitto(tmp_path / "broker", persistent=True, extra="autosave_on_changes true")
    broker.start()
    sub = Subscriber(broker.host, broker.port, "plant/+/+/+/event", client_id="scada", clean_session=False)
    config = daemon_config(tmp_path, broker, source={"realtime": True, "duration_s": 36_000, "drops": DROPS},
                           levels={"window_s": 0.2, "dwell_s": 0.1, "min_frames": 2},
                           mqtt={"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "keepalive_s": 5, "stable_after_s": 1.0})
    config_path = write_config(tmp_path / "c.yaml", config)
    logs: list[Path] = []
    daemon: DaemonProcess | None = None

    def start_daemon() -> DaemonProcess:
        logs.append(tmp_path / f"d{len(logs)}.log")
        return DaemonProcess(config_path, logs[-1])

    try:
        daemon = start_daemon()
        wait_until(lambda: len(stored(logs)) >= 2, 30, "the first events")
        kills = {"daemon": 0, "broker": 0}
        timeline: list[str] = []
        for _ in range(ROUNDS):
            before = len(stored(logs))
            wait_until(lambda b=before: len(stored(logs)) >= b + 1, 30, "an event in this round")
            if rng.random() < 0.5:
                daemon.kill()
                kills["daemon"] += 1
                timeline.append(f"daemon killed after #{max(stored(logs))} ({logs[-1].name})")
                daemon = start_daemon()
            else:
                broker.kill()
                kills["broker"] += 1
                timeline.append(f"broker killed after #{max(stored(logs))}")
                wait_until(lambda b=before: len(stored(logs)) >= b + 2, 30, "an event stored while the broker is down")
                broker.start()
                sub.client.reconnect()
        def received() -> set[int]:
            return {m.json()["seq"] for m in sub.messages}

        def missing_report(expected: set[int]) -> str:
            missing = sorted(expected - received())
            where = {n: log.name for log in logs for n in map(int, STORED.findall(log.read_text(errors="replace")))}
            return f"missing seqs {missing} (stored by {[where[n] for n in missing]}); timeline {timeline}"

        # Still running: everything stored so far arrives (the daemon reconnects by itself) ...
        so_far = stored(logs)
        try:
            sub.wait_for(lambda ms: received() >= so_far, timeout=60, what=f"the {len(so_far)} events stored so far")
        except AssertionError:
            raise AssertionError(missing_report(so_far)) from None
        # ... and a graceful stop delivers what was stored meanwhile (once the last daemon is up and
        # has its signal handlers: a SIGTERM during Python's start-up just ends the process).
        wait_until(lambda: "first inference" in logs[-1].read_text(errors="replace"), 30, "the last daemon running")
        assert daemon.terminate() == 0
        # The store's own counter says how many events were ever stored (a SIGKILL may land between a
        # commit and its log line, so the logs can miss one; the counter cannot).
        db = sqlite3.connect(tmp_path / "state" / "outbox.sqlite")
        (last_seq,) = db.execute("SELECT value FROM store_meta WHERE key = 'last_seq'").fetchone()
        db.close()
        expected = set(range(1, int(last_seq) + 1))
        assert stored(logs) <= expected
        try:
            sub.wait_for(lambda ms: received() >= expected, timeout=60, what=f"all {len(expected)} events")
        except AssertionError:
            raise AssertionError(missing_report(expected)) from None
        ids_by_seq: dict[int, set[str]] = {}
        for message in sub.messages:
            validate(message)
            event = message.json()
            ids_by_seq.setdefault(event["seq"], set()).add(event["event_id"])
        assert set(ids_by_seq) == expected
        assert all(len(ids) == 1 for ids in ids_by_seq.values()), {s: i for s, i in ids_by_seq.items() if len(i) > 1}
        assert kills["daemon"] >= 3 and kills["broker"] >= 3, kills
    finally:
        if broker.proc is not None:
            broker.proc.send_signal(signal.SIGCONT)
        sub.close()
        if daemon is not None:
            daemon.close()
        broker.stop()
