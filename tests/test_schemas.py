"""Every JSON Schema in edge/schemas compiles in Ajv's strict mode, rejects a wrong root type, and agrees with
Python's jsonschema on real payloads the device builds (Node.js and Ajv from the npm registry, installed into
tests/js/node_modules by scripts/setup-env.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import numpy as np
import pytest

from edge.alarms import Alarm, AlarmState
from edge.commands import CommandRouter, register_device_commands
from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.events import AlarmChanged, HealthChanged, LevelChanged, ModelChanged
from edge.fakes import FakeClassifier
from edge.messages import DeviceIdentity, alarm_payload, event_body, telemetry_payload, with_replayed
from edge.modelstore.commands import register_model_commands
from edge.modelstore.shadow import ShadowStats
from edge.publishing.recording import RecordingPublisher
from edge.snapshots import Snapshot
from edge.sources.base import Frame
from edge.state import Health, Level

pytestmark = pytest.mark.output_side
REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "edge" / "schemas"
JS = REPO / "tests" / "js"
ME = DeviceIdentity("s1", "l1", "dev1")
WRONG_ROOTS = {"object": [[], "text", 1, 1.5, True, None], "string": [{}, [], 1, 1.5, True, None]}


def events() -> list[dict[str, Any]]:
    sha = "a" * 64
    changes = [LevelChanged("belt", Level.ALERT, Level.OK, 0.93, "flow", 7, 1.0, 1.5, True, sha),
               HealthChanged(Health.CAMERA_FAULT, Health.OK, "no frames for 10 s", 8, 2.0, False, sha),
               AlarmChanged("belt", Alarm(AlarmState.ACTIVE_ACKNOWLEDGED, 3.0, 1.5, "alice", 3.0), AlarmState.ACTIVE_UNACKNOWLEDGED,
                            "acknowledged by alice", Level.ALERT, 3.0, True, sha),
               AlarmChanged("belt", Alarm(AlarmState.ACTIVE_UNACKNOWLEDGED, 4.0, 4.0), AlarmState.NORMAL, "level alert",
                            Level.ALERT, 4.0, True, sha),
               ModelChanged("installed", "b" * 64, None, "from m.tflite, signed by key 0123456789abcdef", "cli", "0123456789abcdef", 3,
                            5.0, True, sha),
               ModelChanged("promoted", "b" * 64, sha, "shadow run passed", "auto", "0123456789abcdef", 4, 6.0, True, "b" * 64),
               ModelChanged("refused", None, None, "x.cwm: signed by an unknown key", "command", None, None, 7.0, False, sha)]
    return [json.loads(with_replayed(event_body(ME, c, event_id="5c9b3a5f-d1d6-4906-a4bd-6e6f19d0d73b", seq=i + 1,
                                                seq_epoch="0" * 32), i % 2 == 0)) for i, c in enumerate(changes)]


def telemetry() -> dict[str, Any]:
    class Frames:
        name, seq = "frames", 0

        def open(self) -> None: ...

        def read(self) -> Frame | None:
            self.seq += 1
            pixels = np.random.default_rng(self.seq).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            return Frame(pixels, self.seq, float(self.seq), float(self.seq)) if self.seq <= 5 else None

        def close(self) -> None: ...

    publisher = RecordingPublisher()
    stats = ShadowStats(("belt",))
    stats.add([0.1], [0.7], (0.5, 0.5), (None, None), (0.5, 0.5), (1.5, 1.7))
    shadow = {"sha256": "b" * 64, "state": "running", "elapsed_s": 2.0, "skipped": 0, **stats.summary()}
    figures = {"model": {"active": {"sha256": "a" * 64, "source": "registry", "form": "int8", "key_id": "0123456789abcdef"},
                         "candidate": shadow}}
    daemon = Daemon(DaemonParts(parse_config({}, check_files=False), FakeClassifier.constant(0.1), Frames(), publisher,
                                figures=[lambda: figures]))
    daemon.run()
    daemon.publish_telemetry()
    return json.loads(telemetry_payload(ME, publisher.snapshots[-1]))


def done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def replies() -> list[dict[str, Any]]:
    router = CommandRouter(wall_clock=lambda: 1_790_000_000.25)
    router.register("ping", lambda c: {"device": "dev1"})
    router.register("republish", lambda c: {"republished": True})
    snapshot = Snapshot("20261124T033023850Z-166-belt", b"\xff\xd8\xff\xd9", 64, 48, "belt", 166, 1_790_000_000.0)
    register_device_commands(router, acknowledge=lambda roi, by: done(Alarm(AlarmState.NORMAL, 2.0, 1.0, by, 2.0)),
                             take_snapshot=lambda roi: done(snapshot), snapshot_topic=lambda i: f"p/snapshot/{i}",
                             rebirths={"plain": lambda: None, "sparkplug": lambda: None})
    register_model_commands(router, ModelManagerShapes())  # type: ignore[arg-type]
    out: list[str] = []
    for payload in (b'{"command": "ping", "id": "1"}', b'{"command": "republish"}', b'{"command": "rebirth"}',
                    b'{"command": "ack", "roi": "belt", "by": "alice"}', b'{"command": "snapshot", "roi": "belt"}',
                    b'{"command": "snapshot"}', b'{"command": "ack", "roi": "belt"}', b'{"command": "reboot"}', b"junk",
                    b'{"command": "model_status"}', b'{"command": "model_list"}', b'{"command": "model_promote", "sha256": "bbbbbb"}',
                    b'{"command": "model_rollback"}', b'{"command": "model_install", "bundle": "new.cwm"}',
                    b'{"command": "model_install", "bundle": "../x.cwm"}'):
        router.dispatch(payload, out.append)
    return [json.loads(r) for r in out]


class ModelManagerShapes:
    """Answers like edge.modelstore.manager.ModelManager (tests/test_modelstore_mqtt.py validates the real one's replies)."""

    switch: ClassVar[dict[str, Any]] = {"active": "b" * 64, "previous": None, "running": "b" * 64, "switched": True,
                                        "model_sha256": "b" * 64}

    def submit(self, work: Any) -> Future[Any]:
        return done(work())

    def status(self) -> dict[str, Any]:
        return {"active": {"sha256": "a" * 64, "source": "config", "form": "int8", "key_id": None}, "candidate": None,
                "registry": {"generation": 1, "active": None, "candidate": "b" * 64, "history": []}, "model_sha256": "a" * 64,
                "shadow_settings": {"every_n_frames": 5}}

    def listing(self) -> dict[str, Any]:
        return {"models": [{"sha256": "b" * 64, "source": "m.tflite", "key_id": "0123456789abcdef", "installed_by": "cli",
                            "installed_at": 1.5, "roles": ["candidate"]}]}

    def promote(self, target: str | None) -> Future[Any]:
        return done(self.switch)

    def rollback(self) -> Future[Any]:
        return done(self.switch | {"active": None, "previous": "b" * 64, "running": "a" * 64, "model_sha256": "a" * 64})

    def install_from_inbox(self, name: str) -> Future[Any]:
        return done({"sha256": "b" * 64, "key_id": None, "source": "m.tflite", "result": "installed", "candidate": "b" * 64})


def cases() -> list[tuple[str, Any, bool]]:
    """(schema file, payload, valid?)."""
    schemas = sorted(p.name for p in SCHEMAS.glob("*.json"))
    out: list[tuple[str, Any, bool]] = []
    for name in schemas:
        root = json.loads((SCHEMAS / name).read_text())["type"]
        out += [(name, wrong, False) for wrong in WRONG_ROOTS[root]]
    out += [("event.json", e, True) for e in events()]
    broken = events()[2] | {"probability": 0.5}  # an alarm event has no probability
    out += [("event.json", broken, False), ("event.json", events()[0] | {"alarm": "normal"}, False)]
    out += [("event.json", events()[0] | {"action": "promoted"}, False), ("event.json", events()[4] | {"roi": "belt"}, False),
            ("event.json", events()[4] | {"action": "deleted"}, False), ("event.json", events()[4] | {"key_id": "XYZ"}, False)]
    out += [("alarm.json", json.loads(alarm_payload(ME, "belt", alarm)), True)
            for alarm in (Alarm(), Alarm(AlarmState.RETURNED_UNACKNOWLEDGED, 2.0, 1.0), Alarm(AlarmState.NORMAL, 3.0, 1.0, "bob", 3.0))]
    out += [("alarm.json", json.loads(alarm_payload(ME, "belt", Alarm())) | {"alarm": "cleared"}, False)]
    out += [("reply.json", r, True) for r in replies()]
    out += [("reply.json", replies()[0] | {"error": "x"}, False), ("reply.json", replies()[3] | {"result": {"roi": 1}}, False),
            ("reply.json", replies()[0] | {"time": 1790000000.25}, False),
            ("reply.json", replies()[9] | {"result": {"active": None}}, False), ("reply.json", replies()[13] | {"result": {}}, False)]
    out += [("command.json", c, True) for c in ({"command": "ping"}, {"command": "ack", "roi": "belt", "by": "alice", "id": "a1"},
                                                {"command": "snapshot"}, {"command": "snapshot", "roi": "lane-2"},
                                                {"command": "rebirth"}, {"command": "model_promote", "sha256": "abcdef12"},
                                                {"command": "model_install", "bundle": "plant-7.cwm"}, {"command": "model_rollback"})]
    out += [("command.json", c, False) for c in ({"command": "ack", "roi": "belt"}, {"command": "ping", "roi": "belt"},
                                                 {"command": "reboot"}, {"command": "snapshot", "by": "x"},
                                                 {"command": "ack", "roi": "../etc", "by": "x"}, {"command": "model_install"},
                                                 {"command": "model_install", "bundle": "../../etc/x.cwm"},
                                                 {"command": "model_rollback", "sha256": "abcdef"},
                                                 {"command": "model_promote", "sha256": "XYZ"})]
    out += [("telemetry.json", telemetry(), True)]
    out += [("telemetry.json", telemetry() | {"model": {"active": None, "candidate": None}}, False)]
    out += [("plain.json", word, True) for word in ("ok", "offline", "camera_fault", "unknown")]
    out += [("plain.json", word, False) for word in ("OK", "", "online")]
    return out


def test_every_schema_compiles_in_ajv_strict_mode_and_ajv_agrees_with_jsonschema(tmp_path: Path) -> None:
    """Ajv 8 (draft 2020-12, strict, ajv-formats) compiles all schemas; wrong root types, broken payloads and real
    payloads get the expected verdict from Ajv and from Python's jsonschema alike."""
    node = shutil.which("node")
    assert node is not None and (JS / "node_modules" / "ajv").is_dir(), "run scripts/setup-env.sh js (make test does)"
    schemas = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))}
    assert set(schemas) == {"alarm.json", "command.json", "event.json", "plain.json", "reply.json", "telemetry.json"}
    expected = cases()
    (tmp_path / "cases.json").write_text(json.dumps({"schemas": schemas, "cases": [{"schema": s, "data": d} for s, d, _ in expected]}))
    run = subprocess.run([node, str(JS / "check_schemas.js"), str(tmp_path / "cases.json")], capture_output=True, text=True, timeout=60)
    report = json.loads(run.stdout)
    assert report["compile_errors"] == {} and run.returncode == 0, report["compile_errors"]
    for (schema, data, valid), verdict in zip(expected, report["verdicts"], strict=True):
        assert verdict["valid"] is valid, (schema, data, verdict["errors"])
        python_valid = jsonschema.Draft202012Validator(schemas[schema], format_checker=jsonschema.FormatChecker()).is_valid(data)
        assert python_valid is valid, (schema, data)
    for name, schema in schemas.items():
        assert schema["$schema"].endswith("2020-12/schema") and "type" in schema, name
