"""The command topic: off by default, strictly validated, and unbreakable by junk."""

from __future__ import annotations

import io
import json
import random
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import REPLY_VALIDATOR, validate
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edge.alarms import AcknowledgeRefused, Alarm, AlarmState
from edge.commands import Command, CommandRouter, Rejected, parse_command, register_device_commands
from edge.config import parse_config
from edge.snapshots import SnapshotTaker
from edge.sources.base import Frame

PREFIX = "plant/s1/l1/dev1"


def test_commands_are_off_by_default() -> None:
    """Nothing is subscribed unless mqtt.commands is true."""
    assert parse_config({}, check_files=False).mqtt.commands is False


ALLOWED = {"ping": frozenset(), "republish": frozenset()}
DEVICE_ALLOWED = ALLOWED | {"rebirth": frozenset(), "ack": frozenset({"roi", "by"}), "snapshot": frozenset({"roi"})}


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
    REPLY_VALIDATOR.validate(unknown)
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


class Alarms:
    """The pure alarm records behind an ``acknowledge`` that completes later, like the daemon's call_soon."""

    def __init__(self) -> None:
        self.records = {"belt": Alarm(AlarmState.ACTIVE_UNACKNOWLEDGED, 1.0, 1.0), "lane-2": Alarm()}
        self.pending: list[tuple[Future[Alarm], str, str]] = []

    def acknowledge(self, roi: str, by: str) -> Future[Alarm]:
        future: Future[Alarm] = Future()
        self.pending.append((future, roi, by))
        return future

    def run(self) -> None:
        for future, roi, by in self.pending:
            try:
                if roi not in self.records:
                    raise AcknowledgeRefused(f"unknown roi {roi!r}")
                self.records[roi] = self.records[roi].acknowledge(by, 2.0)
                future.set_result(self.records[roi])
            except AcknowledgeRefused as exc:
                future.set_exception(exc)
        self.pending.clear()


def device_router(alarms: Alarms, taker: SnapshotTaker, rebirths: list[str]) -> CommandRouter:
    router = CommandRouter(wall_clock=lambda: 10.0)
    router.register("ping", lambda c: {"device": "dev1"})
    router.register("republish", lambda c: {"republished": True})
    register_device_commands(router, acknowledge=alarms.acknowledge, take_snapshot=taker.take, snapshot_topic=lambda i: f"p/snapshot/{i}",
                             rebirths={"plain": lambda: rebirths.append("plain"), "sparkplug": lambda: rebirths.append("sparkplug")})
    return router


def test_a_deferred_command_is_answered_when_it_is_done_and_only_once() -> None:
    """ack completes in the frame loop: no reply until then, then exactly one; a refusal says why; a command
    cancelled at shutdown says so."""
    alarms, replies = Alarms(), []
    router = device_router(alarms, SnapshotTaker({"belt": (0, 0, 1, 1)}), [])
    router.dispatch(b'{"command": "ack", "roi": "belt", "by": "alice", "id": "a"}', replies.append)
    router.dispatch(b'{"command": "ack", "roi": "lane-2", "by": "bob", "id": "b"}', replies.append)
    router.dispatch(b'{"command": "ack", "roi": "belt", "by": "carol", "id": "c"}', replies.append)
    assert replies == []
    alarms.run()
    got = {r["id"]: r for r in map(json.loads, replies)}
    assert len(replies) == 3
    assert got["a"]["ok"] and got["a"]["result"]["alarm"] == "active_acknowledged" and got["a"]["result"]["acked_by"] == "alice"
    assert got["b"]["error"] == "nothing to acknowledge: the alarm is normal"
    assert got["c"]["error"] == "already acknowledged by alice"
    router.dispatch(b'{"command": "ack", "roi": "belt", "by": "dave"}', replies.append)
    alarms.pending[0][0].cancel()
    assert json.loads(replies[-1])["error"] == "cancelled: the device is stopping"
    for reply in replies:
        REPLY_VALIDATOR.validate(json.loads(reply))


@pytest.mark.parametrize(("payload", "error"), [
    (b'{"command": "ack", "roi": "belt"}', "'ack' needs 'by'"),
    (b'{"command": "ack", "by": "x"}', "'ack' needs 'roi'"),
    (b'{"command": "ack", "roi": "../x", "by": "x"}', "'roi' must match"),
    (b'{"command": "ack", "roi": "belt", "by": 7}', "'by' must be a non-empty string"),
    (b'{"command": "ack", "roi": "belt", "by": "   "}', "'by' must be a non-empty string"),
    (b'{"command": "ack", "roi": "belt", "by": "a\\u0000b"}', "control characters"),
    (b'{"command": "ack", "roi": "belt", "by": "' + b"x" * 65 + b'"}', "at most 64"),
    (b'{"command": "snapshot", "roi": "nope"}', "unknown roi 'nope'"),
    (b'{"command": "snapshot"}', "no frame yet"),
    (b'{"command": "rebirth", "roi": "belt"}', "unknown field(s) roi for 'rebirth'"),
])
def test_bad_arguments_get_an_error_that_says_what_is_expected(payload: bytes, error: str) -> None:
    """Each new command checks its arguments and says exactly what is wrong."""
    router = device_router(Alarms(), SnapshotTaker({"belt": (0, 0, 1, 1)}), [])
    reply = json.loads(router.handle(payload, 0.0))
    REPLY_VALIDATOR.validate(reply)
    assert reply["ok"] is False and error in reply["error"], reply


def test_snapshot_encodes_off_the_caller_and_rebirth_reaches_every_publisher() -> None:
    """snapshot: a JPEG of the latest frame (or the ROI's crop) made on the taker's thread; rebirth: plain and Sparkplug."""
    taker, rebirths, replies = SnapshotTaker({"belt": (0.5, 0.0, 0.5, 1.0)}), [], []
    pixels = np.zeros((240, 320, 3), dtype=np.uint8)
    pixels[:, 160:] = 255
    taker.on_frame(Frame(pixels, 9, 1.0, 1_790_000_000.0), None, None)
    router = device_router(Alarms(), taker, rebirths)
    sinks: list[Any] = []
    taker.add_sink(sinks.append)
    router.dispatch(b'{"command": "snapshot", "roi": "belt", "id": "s"}', replies.append)
    router.dispatch(b'{"command": "snapshot"}', replies.append)
    router.dispatch(b'{"command": "rebirth"}', replies.append)
    wait_until(lambda: len(replies) == 3, 10, "three replies")
    by_command = {(r["command"], r["id"]): r for r in map(json.loads, replies)}
    crop = by_command[("snapshot", "s")]["result"]
    assert (crop["width"], crop["height"], crop["frame_seq"], crop["roi"]) == (160, 240, 9, "belt")
    image = Image.open(io.BytesIO(next(s.jpeg for s in sinks if s.roi == "belt")))
    assert image.format == "JPEG" and image.size == (160, 240) and min(image.convert("L").getdata()) > 200  # only the white half
    assert by_command[("snapshot", None)]["result"]["width"] == 320
    assert by_command[("rebirth", None)]["result"] == {"republished": True, "sparkplug": True} and rebirths == ["plain", "sparkplug"]


NEW_COMMANDS = st.fixed_dictionaries(
    {"command": st.sampled_from(["ack", "snapshot", "rebirth", "ACK", "snap"])},
    optional={"roi": st.one_of(st.sampled_from(["belt", "lane-2", "nope", "", "../../etc"]), st.integers(), st.none(), st.text(max_size=80)),
              "by": st.one_of(st.text(max_size=80), st.integers(), st.lists(st.text(max_size=3), max_size=2), st.none()),
              "id": st.one_of(st.text(max_size=70), st.integers()),
              "extra": st.booleans()})


@settings(max_examples=600, deadline=None)
@given(NEW_COMMANDS)
def test_new_commands_never_raise_and_always_get_one_valid_reply(command: dict[str, Any]) -> None:
    """Fuzz: any shape of ack/snapshot/rebirth payload gets exactly one schema-valid reply; ok only when it is
    well formed and possible."""
    alarms, replies = Alarms(), []
    taker = SnapshotTaker({"belt": (0, 0, 1, 1), "lane-2": (0, 0, 0.5, 0.5)})
    taker.on_frame(Frame(np.full((48, 64, 3), 128, np.uint8), 1, 1.0, 1.0), None, None)
    router = device_router(alarms, taker, [])
    router.dispatch(json.dumps(command).encode(), replies.append)
    alarms.run()
    wait_until(lambda: len(replies) >= 1, 10, "the reply")
    assert len(replies) == 1
    reply = json.loads(replies[0])
    REPLY_VALIDATOR.validate(reply)
    parsed = parse_command(json.dumps(command).encode(), DEVICE_ALLOWED)
    if isinstance(parsed, Rejected):
        assert reply["ok"] is False
    elif parsed.name == "ack":
        assert reply["ok"] == (command.get("roi") == "belt" and isinstance(command.get("by"), str) and bool(command["by"].strip())
                               and len(command["by"]) <= 64 and all(ord(c) >= 32 for c in command["by"]))
    elif parsed.name == "snapshot":
        assert reply["ok"] == (command.get("roi") in (None, "belt", "lane-2"))


@pytest.mark.broker
@pytest.mark.output_side
def test_an_operator_acknowledges_an_alarm_and_asks_for_a_snapshot_over_mqtt(tmp_path: Path, mosquitto: Mosquitto, subscribe) -> None:
    """A drop raises the alarm (retained alarm/belt, an alarm event); 'ack' by an operator is answered with who and when,
    changes the retained record and sends an event with acked_by/acked_at; 'snapshot' puts a JPEG of the frame on its
    topic, the size the reply says; junk new commands each get one valid reply and leave the daemon running."""
    sub = subscribe(mosquitto, f"{PREFIX}/#")
    config = daemon_config(tmp_path, mosquitto, mqtt={"commands": True},
                           source={"realtime": True, "duration_s": 3600, "drops": [{"start_s": 0.5, "duration_s": 3600}]})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    operator = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator")

    def command(body: dict[str, Any]) -> dict[str, Any]:
        operator.publish(f"{PREFIX}/command", json.dumps(body).encode(), qos=1).wait_for_publish(10)
        sub.wait_for(lambda ms: any(m.topic.endswith("/command/reply") and m.json()["id"] == body["id"] for m in ms),
                     what=f"the reply to {body}")
        return next(m.json() for m in sub.on("/command/reply") if m.json()["id"] == body["id"])

    try:
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/alarm/belt" and m.json()["alarm"] == "active_unacknowledged" for m in ms),
                     timeout=30, what="the alarm raised")
        operator.connect(mosquitto.host, mosquitto.port)
        operator.loop_start()
        reply = command({"command": "ack", "roi": "belt", "by": "alice", "id": "ack-1"})
        assert reply["ok"] and reply["result"]["alarm"] == "active_acknowledged" and reply["result"]["acked_by"] == "alice"
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/alarm/belt" and m.json()["acked_by"] == "alice" for m in ms), what="record")
        sub.wait_for(lambda ms: any(m.topic.endswith("/event") and m.json()["type"] == "alarm" and m.json()["acked_by"] == "alice"
                                    for m in ms), what="the acknowledgement event")
        assert command({"command": "ack", "roi": "belt", "by": "bob", "id": "ack-2"})["error"] == "already acknowledged by alice"
        shot = command({"command": "snapshot", "roi": "belt", "id": "shot"})["result"]
        sub.wait_for(lambda ms: any(m.topic == shot["topic"] for m in ms), what="the JPEG")
        jpeg = next(m for m in sub.messages if m.topic == shot["topic"])
        assert not jpeg.retain and len(jpeg.raw) == shot["bytes"]
        assert Image.open(io.BytesIO(jpeg.raw)).size == (shot["width"], shot["height"]) == (160, 120)
        rng = random.Random(3)
        for i in range(200):  # junk and valid new commands as fast as they come: each still gets its one reply
            body: dict[str, Any] = {"command": rng.choice(["ack", "snapshot", "rebirth"]), "id": f"fuzz-{i}"}
            if rng.random() < 0.7:
                body["roi"] = rng.choice(["belt", "nope", "", 5, None, "x" * 70, "../a"])
            if rng.random() < 0.5:
                body["by"] = rng.choice(["op", "", 3, ["a"], "\u0000", "y" * 90])
            operator.publish(f"{PREFIX}/command", json.dumps(body).encode(), qos=1)
        sub.wait_for(lambda ms: sum(1 for m in ms if m.topic.endswith("/command/reply")) >= 203, timeout=30, what="203 replies")
        replies = [m.json() for m in sub.on("/command/reply")]
        assert len(replies) == 203 and sorted(r["id"] for r in replies if r["id"].startswith("fuzz-")) == sorted(
            f"fuzz-{i}" for i in range(200)) and daemon.alive()
        for reply in replies:
            REPLY_VALIDATOR.validate(reply)
        for message in sub.messages:
            if not message.topic.endswith("/command"):
                validate(message)
        assert daemon.terminate() == 0
    finally:
        operator.loop_stop()
        operator.disconnect()
        daemon.close()
