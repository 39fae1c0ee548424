"""The MQTT transport against a real Mosquitto: message ids, acknowledgements and the outbox."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import wait_until
from helpers.subscriber import Subscriber

from edge.mqtt import MqttSettings, MqttTransport
from edge.outbox import Outbox

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.output_side]


def test_acknowledgements_after_the_message_ids_wrap_never_delete_an_unacknowledged_event(
        tmp_path: Path, mosquitto: Mosquitto, subscribe) -> None:
    """70,000 QoS 1 messages without outbox rows on one connection (paho's ids wrap past 65,535), then the
    broker freezes: 40 new events stay stored until their own PUBACKs arrive, and then all are delivered."""
    sub: Subscriber = subscribe(mosquitto, "wrap/event")
    outbox = Outbox(tmp_path / "o.sqlite", 100_000)
    transport = MqttTransport(MqttSettings(mosquitto.host, mosquitto.port, "wrap-test", "wrap/status", "offline",
                                           keepalive_s=60), outbox)
    transport.start()
    try:
        wait_until(lambda: transport.connected, 20, "connected")
        sent = 0
        while sent < 70_000:
            for _ in range(200):
                transport.send("wrap/noise", "x")
            sent += 200
            wait_until(lambda target=sent: transport.published >= target, 20, f"{sent} messages published")
        assert transport.connections == 1 and transport.published > 65_535 + 1
        assert mosquitto.proc is not None
        mosquitto.proc.send_signal(signal.SIGSTOP)  # no acknowledgement can arrive now
        for i in range(40):
            transport.send_event("wrap/event", lambda seq, event_id, epoch, i=i: json.dumps({"seq": seq, "n": i}))
        wait_until(lambda: transport.published >= sent + 40, 20, "the 40 events published")
        assert outbox.counts().pending == 40, "an event was deleted without its broker's acknowledgement"
        mosquitto.proc.send_signal(signal.SIGCONT)
        sub.wait_for(lambda ms: len({m.json()["n"] for m in ms}) == 40, timeout=30, what="all 40 events")
        wait_until(lambda: outbox.counts().pending == 0, 20, "the outbox emptied by real acknowledgements")
    finally:
        if mosquitto.proc is not None:
            mosquitto.proc.send_signal(signal.SIGCONT)
        transport.stop()


def test_an_event_handed_over_on_a_quiet_link_goes_out_at_once(tmp_path: Path, mosquitto: Mosquitto, subscribe,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport thread must not store an event and then sleep on a quiet socket before publishing it: with
    the idle poll stretched to a minute, an event on an otherwise silent link still reaches a subscriber (it
    waited for the next wake-up, up to 100 ms behind a live alarm in `make bench`, before this was fixed)."""
    monkeypatch.setattr("edge.mqtt.transport.IDLE_POLL_S", 60.0)
    sub: Subscriber = subscribe(mosquitto, "quiet/event")
    outbox = Outbox(tmp_path / "o.sqlite", 100)
    transport = MqttTransport(MqttSettings(mosquitto.host, mosquitto.port, "quiet-test", "quiet/status", "offline",
                                           keepalive_s=120), outbox)
    transport.start()
    try:
        wait_until(lambda: transport.ready, 20, "the session ready")
        for n in range(3):  # each on a link that has gone quiet: the previous event's PUBACK has come and gone
            wait_until(lambda: outbox.counts().pending == 0, 20, "nothing in flight")
            transport.send_event("quiet/event", lambda seq, event_id, epoch, n=n: json.dumps({"n": n}))
            sub.wait_for(lambda ms, n=n: any(m.json()["n"] == n for m in ms), timeout=10, what=f"event {n}")
    finally:
        transport.stop()
