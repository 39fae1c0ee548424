"""The command topic: off by default, strictly validated, and unbreakable by junk."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.commands import Command, CommandRouter, Rejected, parse_command
from edge.config import parse_config

PREFIX = "plant/s1/l1/dev1"


def test_commands_are_off_by_default() -> None:
    """Nothing is subscribed unless mqtt.commands is true."""
    assert parse_config({}, check_files=False).mqtt.commands is False


ALLOWED = {"ping": frozenset(), "republish": frozenset()}


def test_only_exact_commands_are_accepted() -> None:
    """Known names, an optional short string id, nothing else."""
    assert parse_command(b'{"command": "ping"}', ALLOWED) == Command("ping", None)
    assert parse_command(b'{"command": "republish", "id": "a1"}', ALLOWED) == Command("republish", "a1")
    for bad in (b'{"command": "reboot"}', b'{"command": "ping", "x": 1}', b'{"command": "ping", "id": 5}',
                b"[]", b"null", b"\xff\xfe", b'{"command": "ping", "id": "' + b"x" * 100 + b'"}', b"[" * 100000):
        assert isinstance(parse_command(bad, ALLOWED), Rejected), bad


def test_every_payload_gets_one_reply_and_an_unknown_command_names_the_allowed_set() -> None:
    """Replies carry the id, ok, an ISO-8601 time, and for a wrong name the commands that exist."""
    router = CommandRouter()
    router.register("ping", lambda c: None)
    router.register("republish", lambda c: {"republished": True})
    unknown = json.loads(router.handle(b'{"command": "reboot", "id": "r1"}', 0.0))
    assert unknown["ok"] is False and unknown["id"] == "r1" and "allowed: ping, republish" in unknown["error"]
    assert unknown["time"] == "1970-01-01T00:00:00.000Z"
    assert json.loads(router.handle(b'{"command": "republish"}', 0.0))["result"] == {"republished": True}
    assert json.loads(router.handle(b"junk", 0.0))["ok"] is False


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=500).map(str.encode) |
       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c) | st.dictionaries(st.text(max_size=10), c), max_leaves=20).map(lambda v: json.dumps(v).encode()))
def test_parse_command_never_raises(payload: bytes) -> None:
    """Any byte string gives a command or None, never an exception (which would kill paho's loop)."""
    result = parse_command(payload, ALLOWED)
    assert isinstance(result, Rejected) or result.name in ("ping", "republish")


def fuzz_payloads(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    valid = [b'{"command": "ping"}', b'{"command": "republish", "id": "r"}']
    out: list[bytes] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            out.append(rng.randbytes(rng.randint(0, 3000)))
        elif kind == 1:
            base = bytearray(rng.choice(valid))
            for _ in range(rng.randint(1, 4)):
                base[rng.randrange(len(base))] = rng.randrange(256)
            out.append(bytes(base))
        elif kind == 2:
            out.append(json.dumps({"command": rng.choice(["ping", "PING", "reboot", 1, None]), "id": rng.random()}).encode())
        elif kind == 3:
            out.append(b"[" * rng.randint(1, 50000))
        elif kind == 4:
            out.append(("\u202e" + "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(50) if True)).encode("utf-8", "surrogatepass"))
        else:
            out.append(b'{"command": "ping", "pad": "' + b"A" * rng.randint(1000, 200_000) + b'"}')
    return out


@pytest.mark.broker
def test_a_thousand_malformed_commands_leave_the_daemon_running_and_publishing(tmp_path: Path, mosquitto: Mosquitto,
                                                                                subscribe) -> None:
    """1,000+ random and malformed payloads: no crash, telemetry continues, each gets one reply, ok only for valid ones."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    sub = subscribe(mosquitto, f"{PREFIX}/#")
    config = daemon_config(tmp_path, mosquitto, source={"realtime": True, "duration_s": 3600, "drops": []},
                           mqtt={"commands": True})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    fuzzer = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fuzzer")
    try:
        sub.wait_for(lambda ms: any(m.topic.endswith("/status") and m.payload == "ok" for m in ms), what="running")
        wait_until(lambda: "MQTT connected" in daemon.log(), 20, "connected")
        fuzzer.connect(mosquitto.host, mosquitto.port)
        fuzzer.loop_start()
        payloads = fuzz_payloads(1000, seed=7)
        for payload in payloads:
            fuzzer.publish(f"{PREFIX}/command", payload, qos=1).wait_for_publish(10)
        for i in range(3):
            fuzzer.publish(f"{PREFIX}/command", json.dumps({"command": "ping", "id": f"after-{i}"}).encode(), qos=1).wait_for_publish(10)
        sub.wait_for(lambda ms: sum(1 for m in ms if m.topic.endswith("/command/reply") and '"after-2"' in m.payload) == 1,
                     timeout=30, what="the reply to the last valid ping")
        telemetry_before = len(sub.on("/telemetry"))
        sub.wait_for(lambda ms: len([m for m in ms if m.topic.endswith("/telemetry")]) >= telemetry_before + 2, what="telemetry")
        assert daemon.alive()
        replies = [json.loads(m.payload) for m in sub.on("/command/reply")]
        valid = sum(1 for p in payloads if isinstance(parse_command(p, ALLOWED), Command)) + 3
        assert len(replies) == len(payloads) + 3
        assert sum(1 for r in replies if r["ok"]) == valid
        for message in sub.messages:
            if not message.topic.endswith("/command"):
                validate(message)
        assert daemon.terminate() == 0
    finally:
        fuzzer.loop_stop()
        fuzzer.disconnect()
        daemon.close()
