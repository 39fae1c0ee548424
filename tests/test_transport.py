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
