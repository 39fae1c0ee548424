"""No alert is ever lost: broker outages, a daemon killed mid-outage, and power loss before the PUBACK."""

from __future__ import annotations

import re
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import Subscriber, validate

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.output_side]
# A drop every 4 s, forever: events keep coming at a known pace in real time.
DROPS = [{"start_s": 1.5 + 4.0 * k, "duration_s": 2.0} for k in range(40)]
STORED = re.compile(r"event #(\d+) stored")


def created(*daemons: DaemonProcess) -> list[int]:
    return [int(n) for d in daemons for n in STORED.findall(d.log())]


def stored_count(rig: Rig) -> int:
    """How many events the store ever allocated (after the daemons stopped). A SIGKILL may land between a commit and
    its log line (an alarm and its level are stored in one batch), so the logs can miss one; the counter cannot."""
    db = sqlite3.connect(rig.tmp / "state" / "outbox.sqlite")
    try:
        (last_seq,) = db.execute("SELECT value FROM store_meta WHERE key = 'last_seq'").fetchone()
    finally:
        db.close()
    return int(last_seq)


def received(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in sub.on("/event")]


def assert_every_event_exactly_once_in_order(sub: Subscriber, last_seq: int) -> None:
    """Seqs 1..last_seq all arrived; each seq has one id (duplicates carry it); first arrivals are in order."""
    events = received(sub)
    for message in sub.on("/event"):
        validate(message)
    ids_by_seq: dict[int, set[str]] = {}
    for event in events:
        ids_by_seq.setdefault(event["seq"], set()).add(event["event_id"])
    assert sorted(ids_by_seq) == list(range(1, last_seq + 1)), f"missing: {set(range(1, last_seq + 1)) - set(ids_by_seq)}"
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), ids_by_seq
    first_arrivals: list[int] = []
    for event in events:
        if event["seq"] not in first_arrivals:
            first_arrivals.append(event["seq"])
    assert first_arrivals == sorted(first_arrivals), first_arrivals


@dataclass
class Rig:
    """A persistent broker, a SCADA subscriber with a persistent session, and the daemons started on them."""

    broker: Mosquitto
    sub: Subscriber
    config_path: Path
    tmp: Path
    daemons: list[DaemonProcess] = field(default_factory=list)

    def start_daemon(self, name: str) -> DaemonProcess:
        daemon = DaemonProcess(self.config_path, self.tmp / f"{name}.log")
        self.daemons.append(daemon)
        return daemon


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    broker = Mosquitto(tmp_path / "broker", persistent=True)
    broker.start()
    config = daemon_config(tmp_path, broker, source={"realtime": True, "duration_s": 3600, "drops": DROPS},
                           mqtt={"reconnect_min_s": 0.2, "reconnect_max_s": 1.0}, telemetry={"interval_s": 5})
    # A persistent session (clean_session=False, QoS 1): the broker queues for it across its own restarts.
    sub = Subscriber(broker.host, broker.port, "plant/+/+/+/event", client_id="scada", clean_session=False)
    setup = Rig(broker, sub, write_config(tmp_path / "c.yaml", config), tmp_path)
    yield setup
    if broker.proc is not None:
        broker.proc.send_signal(signal.SIGCONT)
    sub.close()
    for daemon in setup.daemons:
        daemon.close()
    broker.stop()


def test_outages_and_a_kill_during_an_outage_lose_nothing(rig: Rig) -> None:
    """Broker down for a while, back; then down again, daemon SIGKILLed and restarted: every event, once, in order."""
    broker, sub = rig.broker, rig.sub
    first = rig.start_daemon("d1")
    sub.wait_for(lambda ms: len(ms) >= 2, timeout=30, what="first drop's events")
    broker.stop()  # outage 1
    before = len(created(first))
    wait_until(lambda: len(created(first)) >= before + 2, 30, "events stored during outage 1")
    broker.start()
    sub.client.reconnect()
    stored = max(created(first))
    sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, stored + 1)), timeout=30,
                 what="outage-1 events replayed")
    assert any(e["replayed"] for e in received(sub))
    broker.stop()  # outage 2: an event is stored, then the daemon dies before it could be sent
    before = len(created(first))
    wait_until(lambda: len(created(first)) >= before + 1, 30, "event stored during outage 2")
    first.kill()
    second = rig.start_daemon("d2")
    wait_until(lambda: len(created(second)) >= 1, 30, "the restarted daemon storing a new event")
    broker.start()
    sub.client.reconnect()
    wait_until(lambda: len(created(second)) >= 3, 30, "more live events after the restart")
    assert second.terminate() == 0
    last = stored_count(rig)
    assert max(created(first, second)) <= last
    sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, last + 1)), timeout=30, what="every event")
    assert_every_event_exactly_once_in_order(sub, last)
    replayed_after_restart = [e for e in received(sub) if e["seq"] in set(created(first)) and e["replayed"]]
    assert replayed_after_restart, "events stored before the kill must arrive marked as replayed"


def test_power_loss_after_an_event_is_stored_but_before_its_puback(rig: Rig) -> None:
    """SIGKILL while the broker is frozen (no PUBACK possible): after restart the event still arrives, same id."""
    broker, sub = rig.broker, rig.sub
    first = rig.start_daemon("d1")
    sub.wait_for(lambda ms: len(ms) >= 1, timeout=30, what="a first event")
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)  # the broker can't acknowledge anything now
    before = len(created(first))
    wait_until(lambda: len(created(first)) >= before + 1, 30, "an event stored while no PUBACK can come")
    first.kill()  # power loss: the event is on disk, unacknowledged
    unacked = max(created(first))
    broker.proc.send_signal(signal.SIGCONT)
    second = rig.start_daemon("d2")
    sub.wait_for(lambda ms: unacked in {m.json()["seq"] for m in ms}, timeout=30, what="the unacknowledged event")
    wait_until(lambda: "MQTT connected" in second.log(), 30, "the restarted daemon connecting")
    assert second.terminate() == 0
    last = stored_count(rig)
    assert max(created(first, second)) <= last
    sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, last + 1)), timeout=30, what="every event")
    assert_every_event_exactly_once_in_order(sub, last)
