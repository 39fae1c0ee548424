"""Sparkplug B against real Mosquitto, decoded by an independent host application (pysparkplug with its own
paho-mqtt 1.x and protobuf, in .venv-spb): births, deaths, rebirth, bdSeq, seq, aliases, held data."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.sparkplug import SparkplugHost, metric
from helpers.subscriber import Subscriber, validate
from paho.mqtt.enums import CallbackAPIVersion

from edge.events import HealthChanged
from edge.mqtt import MqttSettings
from edge.outbox import Outbox
from edge.sparkplug.metrics import NodeView
from edge.sparkplug.publisher import SparkplugOptions, SparkplugPublisher
from edge.sparkplug.session import BdSeqFile
from edge.state import DeviceState, Health

pytestmark = [pytest.mark.broker, pytest.mark.output_side]
PREFIX = "plant/s1/l1/dev1"
ACL = Path(__file__).resolve().parent.parent / "docs" / "mosquitto-acl.conf"
INT64, BOOLEAN, STRING, FLOAT = 4, 11, 12, 9


def bd_seq(message: dict[str, Any]) -> int:
    value = metric(message, "bdSeq")
    assert value["datatype"] == INT64
    return int(value["value"])


def node_stream(host: SparkplugHost) -> list[dict[str, Any]]:
    """What the edge node published (not the host's own commands), in arrival order."""
    return [m for m in host.sparkplug() if m["type"] not in ("NCMD", "DCMD")]


def assert_seq_continuity(messages: list[dict[str, Any]]) -> None:
    """Every NBIRTH has seq 0; every other message is one more than the node's previous one, modulo 256. An NDEATH
    ends the session whose bdSeq it carries (a late or second copy of an older session's death is ignored, as a
    host does)."""
    previous, session = None, None
    for m in messages:
        if m["type"] == "NDEATH":
            assert m["seq"] is None, "an NDEATH carries no seq"
            if bd_seq(m) == session:
                previous = session = None
            continue
        if m["type"] == "NBIRTH":
            assert m["seq"] == 0
            session = bd_seq(m)
        else:
            assert previous is not None and m["seq"] == (previous + 1) % 256, (m["type"], m["seq"], previous)
        previous = m["seq"]


def assert_aliases(messages: list[dict[str, Any]]) -> None:
    """Births name every metric with an alias; data messages carry the alias alone, the one the last birth gave."""
    aliases: dict[tuple[str | None, str], int] = {}
    for m in messages:
        if m["type"] in ("NBIRTH", "DBIRTH"):
            for x in m["metrics"]:
                assert x["name_on_wire"] and x["alias"] is not None and x["datatype"] != 0
                aliases[(m["device"], x["name"])] = x["alias"]
        elif m["type"] in ("NDATA", "DDATA"):
            for x in m["metrics"]:
                assert not x["name_on_wire"] and aliases[(m["device"], x["name"])] == x["alias"], (m["type"], x)
    assert len(set(aliases.values())) == len(aliases), "aliases must be unique across the edge node"


def command(client: paho.Client, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
    client.publish(f"{PREFIX}/command", json.dumps(body).encode(), qos=1).wait_for_publish(10)
    sub.wait_for(lambda ms: any(m.topic.endswith("/command/reply") and m.json()["id"] == body["id"] for m in ms), what=str(body))
    return next(m.json() for m in sub.on("/command/reply") if m.json()["id"] == body["id"])


@pytest.fixture
def operator(mosquitto: Mosquitto):  # type: ignore[no-untyped-def]
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def sparkplug_config(tmp_path: Path, mosquitto: Mosquitto, drops: list[dict[str, float]], **sparkplug: Any) -> Path:
    config = daemon_config(tmp_path, mosquitto, mqtt={"commands": True}, telemetry={"interval_s": 1},
                           source={"realtime": True, "duration_s": 3600, "drops": drops},
                           sparkplug={"enabled": True, "group_id": "g1", **sparkplug})
    return write_config(tmp_path / "c.yaml", config)


def test_births_data_acknowledge_rebirth_and_the_ndeath_after_kill_9(tmp_path: Path, mosquitto: Mosquitto, subscribe, operator) -> None:
    """An independent host decodes NBIRTH (seq 0, bdSeq, node metrics) and DBIRTH; level and alarm changes come as
    DDATA by alias; a DCMD acknowledges the alarm; rebirth on NCMD and on the plain command; after kill -9 the
    broker's NDEATH carries the NBIRTH's bdSeq; a restarted daemon is born with the next bdSeq and says NDEATH itself
    when stopped. seq is continuous throughout."""
    sub = subscribe(mosquitto, f"{PREFIX}/#")
    host = SparkplugHost(mosquitto.port, "g1", tmp_path / "host.jsonl")
    config = sparkplug_config(tmp_path, mosquitto, [{"start_s": 1.0, "duration_s": 3600}])
    daemon = DaemonProcess(config, tmp_path / "d.log")
    try:
        host.wait_for(lambda ms: host.sparkplug("DBIRTH"), 30, "the births")
        nbirth, dbirth = host.sparkplug("NBIRTH")[0], host.sparkplug("DBIRTH")[0]
        assert (nbirth["topic"], nbirth["qos"], nbirth["retain"], nbirth["seq"]) == ("spBv1.0/g1/NBIRTH/dev1", 0, False, 0)
        assert (dbirth["topic"], dbirth["seq"]) == ("spBv1.0/g1/DBIRTH/dev1/belt", 1)
        assert metric(nbirth, "Node Control/Rebirth")["value"] is False and metric(nbirth, "Node Control/Rebirth")["datatype"] == BOOLEAN
        assert len(metric(nbirth, "Model SHA256")["value"]) == 64 and metric(nbirth, "Runtime")["datatype"] == STRING
        assert metric(nbirth, "Camera Health")["value"] == "ok"
        assert {x["name"] for x in dbirth["metrics"]} >= {"Level", "Probability", "Alarm/State", "Alarm/Acked By", "Snapshot/Reference"}
        assert metric(dbirth, "Probability")["datatype"] == FLOAT
        first_bd_seq = bd_seq(nbirth)

        def ddata(name: str, value: Any) -> bool:
            return any(x["name"] == name and x["value"] == value for m in host.sparkplug("DDATA") for x in m["metrics"])

        host.wait_for(lambda ms: ddata("Level", "alert") and ddata("Alarm/State", "active_unacknowledged"), 30, "the alarm")
        host.send("ack dev1 belt alice")
        host.wait_for(lambda ms: ddata("Alarm/State", "active_acknowledged") and ddata("Alarm/Acked By", "alice"), 15, "the ack")
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/alarm/belt" and m.json()["acked_by"] == "alice" for m in ms), what="plain")
        host.send("snapshot dev1 belt")
        host.wait_for(lambda ms: any(x["name"] == "Snapshot/Reference" and x["value"] for m in host.sparkplug("DDATA")
                                     for x in m["metrics"]), 15, "the snapshot's reference")
        reference = next(x["value"] for m in host.sparkplug("DDATA") for x in m["metrics"] if x["name"] == "Snapshot/Reference")
        assert reference.startswith(f"{PREFIX}/snapshot/") and reference.endswith("-belt")
        sub.wait_for(lambda ms: any(m.topic == reference and m.raw.startswith(b"\xff\xd8") for m in ms), what="the JPEG it names")
        assert command(operator, sub, {"command": "rebirth", "id": "r"})["result"] == {"republished": True, "sparkplug": True}
        host.wait_for(lambda ms: len(host.sparkplug("NBIRTH")) == 2, 15, "a rebirth on the plain command")
        host.send("rebirth dev1")
        host.wait_for(lambda ms: len(host.sparkplug("NBIRTH")) == 3 and len(host.sparkplug("DBIRTH")) == 3, 15, "a rebirth on NCMD")
        assert [bd_seq(m) for m in host.sparkplug("NBIRTH")] == [first_bd_seq] * 3  # same MQTT session, same bdSeq
        reborn = host.sparkplug("DBIRTH")[-1]
        assert metric(reborn, "Alarm/State")["value"] == "active_acknowledged" and metric(reborn, "Level")["value"] == "alert"

        daemon.kill()
        death = host.wait_for(lambda ms: host.sparkplug("NDEATH"), 15, "the broker's NDEATH")
        ndeath = host.sparkplug("NDEATH")[0]
        assert ndeath["topic"] == "spBv1.0/g1/NDEATH/dev1" and ndeath["seq"] is None and len(ndeath["metrics"]) == 1
        assert bd_seq(ndeath) == first_bd_seq, "the NDEATH must carry the bdSeq of the NBIRTH it ends"
        assert death and not any(m.get("error") for m in host.messages()), [m for m in host.messages() if m.get("error")]

        daemon = DaemonProcess(config, tmp_path / "d2.log")
        host.wait_for(lambda ms: len(host.sparkplug("NBIRTH")) == 4, 30, "the births of the restarted daemon")
        assert bd_seq(host.sparkplug("NBIRTH")[-1]) == (first_bd_seq + 1) % 256
        assert metric(host.sparkplug("DBIRTH")[-1], "Alarm/Acked By")["value"] == "alice"  # the alarm record survived
        assert daemon.terminate() == 0
        host.wait_for(lambda ms: any(bd_seq(m) == (first_bd_seq + 1) % 256 for m in host.sparkplug("NDEATH")), 15,
                      "the NDEATH said on the way out")
        stream = node_stream(host)
        assert_seq_continuity(stream)
        assert_aliases(stream)
        # Live data is never historical; after the kill -9, what was stored but not yet sent may come as history.
        first_death = next(i for i, m in enumerate(stream) if m["type"] == "NDEATH")
        assert all(not x["historical"] for m in stream[:first_death] for x in m.get("metrics", []))
        assert all(m["qos"] == 0 and not m["retain"] for m in stream if m["type"] != "NDEATH")
        for message in sub.messages:
            if not message.topic.endswith("/command"):
                validate(message)
    finally:
        daemon.close()
        host.close()


def test_with_a_primary_host_data_is_held_while_it_is_offline_and_sent_as_historical(tmp_path: Path, mosquitto: Mosquitto,
                                                                                      subscribe, operator) -> None:
    """No birth before the primary host's STATE says online; what happened meanwhile arrives after the births with
    is_historical; when the host goes offline the node says NDEATH and holds data again, durably: a kill -9 and a
    restart later, the held acknowledgement still arrives, historical, once the host is back."""
    sub = subscribe(mosquitto, f"{PREFIX}/#")
    observer = SparkplugHost(mosquitto.port, "g1", tmp_path / "observer.jsonl")
    config = sparkplug_config(tmp_path, mosquitto, [{"start_s": 0.5, "duration_s": 1.5}], primary_host_id="scada")
    daemon = DaemonProcess(config, tmp_path / "d.log")
    primary: SparkplugHost | None = None
    try:
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/alarm/belt" and m.json()["alarm"] == "returned_unacknowledged" for m in ms),
                     timeout=30, what="an alarm raised and returned (plain topics)")
        wait_until(lambda: "MQTT connected" in daemon.log() and "-spb" in daemon.log(), 10, "the Sparkplug connection")
        assert observer.sparkplug() == [], "no birth and no data before the primary host is online"

        primary = SparkplugHost(mosquitto.port, "g1", tmp_path / "primary.jsonl", host_id="scada")
        observer.wait_for(lambda ms: len([m for m in observer.sparkplug("DDATA") if any(x["name"] == "Alarm/State" for x in m["metrics"])])
                          >= 2, 20, "the held alarm data")
        stream = node_stream(observer)
        assert [m["type"] for m in stream[:2]] == ["NBIRTH", "DBIRTH"]
        assert metric(stream[1], "Level")["value"] == "ok" and metric(stream[1], "Alarm/State")["value"] == "returned_unacknowledged"
        held = [(x["name"], x["value"], x["historical"]) for m in stream[2:] for x in m["metrics"] if x["name"] in ("Level", "Alarm/State")]
        assert ("Level", "alert", True) in held and ("Alarm/State", "active_unacknowledged", True) in held
        assert ("Alarm/State", "returned_unacknowledged", True) in held
        born_with = bd_seq(stream[0])

        primary.send("offline")
        observer.wait_for(lambda ms: observer.sparkplug("NDEATH"), 15, "the node's NDEATH when its host went offline")
        assert bd_seq(observer.sparkplug("NDEATH")[0]) == born_with
        wait_until(lambda: "session on" in daemon.log() and daemon.log().count("conveyor-dev1-spb (MQTT") >= 2, 15,
                   "the Sparkplug connection made again, waiting for its host")
        held_before = daemon.log().count("stored (conveyor-dev1-spb)")
        assert command(operator, sub, {"command": "ack", "roi": "belt", "by": "alice", "id": "a"})["ok"]
        wait_until(lambda: daemon.log().count("stored (conveyor-dev1-spb)") > held_before, 10, "the acknowledgement stored")
        # The alarm record reaches its file on the store's own thread (edge.alarms.store), a moment after the outbox.
        alarms = tmp_path / "state" / "alarms.json"
        wait_until(lambda: alarms.exists() and '"acked_by": "alice"' in alarms.read_text(), 10, "the acknowledged alarm on disk")
        daemon.kill()  # with the acknowledgement held in the Sparkplug outbox
        # The broker sends the will of the connection that waited for the host (there may also be a second copy of
        # the first NDEATH: Sparkplug allows it, and hosts ignore a death whose bdSeq they have already seen).
        observer.wait_for(lambda ms: any(bd_seq(m) != born_with for m in observer.sparkplug("NDEATH")), 15,
                          "the will of the second connection")
        waited_with = next(bd_seq(m) for m in observer.sparkplug("NDEATH") if bd_seq(m) != born_with)
        daemon = DaemonProcess(config, tmp_path / "d2.log")
        wait_until(lambda: daemon.log().count("MQTT connected") >= 2, 30, "both connections of the restarted daemon")
        births_before = len(observer.sparkplug("NBIRTH"))
        primary.send("online")
        observer.wait_for(lambda ms: any(x["name"] == "Alarm/Acked By" and x["value"] == "alice" and x["historical"]
                                         for m in observer.sparkplug("DDATA") for x in m["metrics"]), 20, "the held acknowledgement")
        assert len(observer.sparkplug("NBIRTH")) == births_before + 1
        assert bd_seq(observer.sparkplug("NBIRTH")[-1]) == (waited_with + 1) % 256  # a restart goes on counting
        assert metric(observer.sparkplug("DBIRTH")[-1], "Alarm/State")["value"] == "normal"
        assert daemon.terminate() == 0
        stream = node_stream(observer)
        assert_seq_continuity(stream)
        assert_aliases(stream)
    finally:
        daemon.close()
        observer.close()
        if primary is not None:
            primary.close()


def test_a_camera_fault_kills_the_roi_devices_and_seq_wraps_after_255(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The publisher on its own: camera_fault -> a DDEATH per ROI (their tags go stale), pictures again -> DBIRTHs;
    300 node messages later seq has wrapped past 255 without a gap; close() says NDEATH."""
    host = SparkplugHost(mosquitto.port, "g1", tmp_path / "host.jsonl")
    settings = MqttSettings(mosquitto.host, mosquitto.port, "spb-unit", "spBv1.0/g1/NDEATH/node", "", qos=0, reconnect_min_s=0.1)
    view = NodeView(status="unknown", health="ok", model_sha256="a" * 64, runtime="fake 0", version="0", site="s", line="l")
    publisher = SparkplugPublisher(SparkplugOptions("g1", "node", fps_deadband=0.5), view, ["belt", "lane-2"], settings,
                                   Outbox(tmp_path / "o.sqlite", 1000), BdSeqFile(tmp_path / "bdseq"))
    try:
        publisher.start(DeviceState.starting(["belt", "lane-2"]))
        host.wait_for(lambda ms: len(host.sparkplug("DBIRTH")) == 2, 15, "the births")
        publisher.changed(HealthChanged(Health.CAMERA_FAULT, Health.OK, "no frames", 5, time.time(), True, "a" * 64))
        host.wait_for(lambda ms: len(host.sparkplug("DDEATH")) == 2, 15, "a DDEATH per ROI")
        publisher.changed(HealthChanged(Health.OK, Health.CAMERA_FAULT, "frames again", 6, time.time(), True, "a" * 64))
        host.wait_for(lambda ms: len(host.sparkplug("DBIRTH")) == 4, 15, "the ROIs born again")
        from edge.events import TelemetrySnapshot

        for i in range(300):
            publisher.telemetry(TelemetrySnapshot({"fps": 10.0 + (i % 2)}, time.time(), True, "a" * 64))
        host.wait_for(lambda ms: len(host.sparkplug("NDATA")) >= 301, 20, "300 FPS reports")
        publisher.close()
        host.wait_for(lambda ms: host.sparkplug("NDEATH"), 15, "the NDEATH")
        stream = node_stream(host)
        assert_seq_continuity(stream)
        assert_aliases(stream)
        assert max(m["seq"] for m in stream if m["seq"] is not None) == 255
        assert [m["device"] for m in host.sparkplug("DDEATH")] == ["belt", "lane-2"]
        health = [x["value"] for m in host.sparkplug("NDATA") for x in m["metrics"] if x["name"] == "Camera Health"]
        assert health == ["camera_fault", "ok"]
    finally:
        publisher.close()
        host.close()


def test_lanes_drawn_or_removed_in_the_console_are_born_or_die_as_devices(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The ROI set changes at run time: the removed lane's device gets a DDEATH, the node is born again with
    the new set (fresh aliases), and a command to the new lane's device reaches it."""
    host = SparkplugHost(mosquitto.port, "g1", tmp_path / "host.jsonl")
    settings = MqttSettings(mosquitto.host, mosquitto.port, "spb-lanes", "spBv1.0/g1/NDEATH/node", "", qos=0, reconnect_min_s=0.1)
    view = NodeView(status="unknown", health="ok", model_sha256="a" * 64, runtime="fake 0", version="0", site="s", line="l")
    publisher = SparkplugPublisher(SparkplugOptions("g1", "node", fps_deadband=0.5), view, ["belt", "lane-2"], settings,
                                   Outbox(tmp_path / "o.sqlite", 1000), BdSeqFile(tmp_path / "bdseq"))
    snapshots: list[str] = []
    publisher.take_snapshot = snapshots.append
    try:
        publisher.start(DeviceState.starting(["belt", "lane-2"]))
        host.wait_for(lambda ms: len(host.sparkplug("DBIRTH")) == 2, 15, "the births")
        publisher.state_changed(DeviceState.starting(["belt", "lane-3"]))
        host.wait_for(lambda ms: len(host.sparkplug("NBIRTH")) == 2 and {"lane-3"} <= {m["device"] for m in host.sparkplug("DBIRTH")},
                      15, "the node born again with lane-3")
        assert [m["device"] for m in host.sparkplug("DDEATH")] == ["lane-2"]
        second_births = {m["device"] for m in host.sparkplug("DBIRTH")[2:]}
        assert second_births == {"belt", "lane-3"}
        host.send("snapshot node lane-3")
        wait_until(lambda: snapshots == ["lane-3"], 15, "the new device's command handled")
        stream = node_stream(host)
        assert_seq_continuity(stream)
        assert_aliases(stream[stream.index(host.sparkplug("NBIRTH")[1]):])
    finally:
        publisher.close()
        host.close()


@pytest.fixture
def acl_broker(tmp_path: Path) -> Mosquitto:
    passwd = tmp_path / "passwd"
    for i, user in enumerate(("dev1", "scada", "ignition")):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd), user, f"{user}-Secret-9"], check=True,
                       timeout=30)
    passwd.chmod(0o644)
    broker = Mosquitto(tmp_path / "broker", extra=f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}")
    broker.start()
    yield broker
    broker.stop()


def test_the_acl_example_carries_sparkplug_and_commands_and_keeps_other_nodes_out(tmp_path: Path, acl_broker: Mosquitto) -> None:
    """Under docs/mosquitto-acl.conf: the 'ignition' host receives births and data, acknowledges an alarm by DCMD and
    gets the broker's NDEATH after kill -9; 'scada' sends a snapshot command and reads its reply; the device's
    account cannot write another edge node's topics."""
    secret = tmp_path / "pw"
    secret.write_text("dev1-Secret-9\n")
    host = SparkplugHost(acl_broker.port, "g1", tmp_path / "host.jsonl", username="ignition", password="ignition-Secret-9")
    sub = Subscriber(acl_broker.host, acl_broker.port, f"{PREFIX}/#", username="scada", password="scada-Secret-9")
    config = daemon_config(tmp_path, acl_broker, mqtt={"commands": True, "username": "dev1", "password_file": str(secret)},
                           source={"realtime": True, "duration_s": 3600, "drops": [{"start_s": 0.5, "duration_s": 3600}]},
                           sparkplug={"enabled": True, "group_id": "g1"})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    scada = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="scada-operator")
    scada.username_pw_set("scada", "scada-Secret-9")
    scada.connect(acl_broker.host, acl_broker.port)
    scada.loop_start()
    try:
        host.wait_for(lambda ms: any(x["name"] == "Alarm/State" and x["value"] == "active_unacknowledged"
                                     for m in host.sparkplug("DDATA") for x in m["metrics"]), 30, "the alarm, by Sparkplug")
        host.send("ack dev1 belt op-7")
        sub.wait_for(lambda ms: any(m.topic == f"{PREFIX}/alarm/belt" and m.json()["acked_by"] == "op-7" for m in ms), what="the DCMD ack")
        assert command(scada, sub, {"command": "snapshot", "id": "s"})["ok"]
        sub.wait_for(lambda ms: any("/snapshot/" in m.topic for m in ms), what="the JPEG, readable by scada")

        intruder = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="dev1-intruder", protocol=paho.MQTTv5)
        intruder.username_pw_set("dev1", "dev1-Secret-9")
        codes: list[int] = []
        acked = threading.Event()
        intruder.on_publish = lambda c, u, mid, rc, p: (codes.append(rc.value), acked.set())
        intruder.connect(acl_broker.host, acl_broker.port)
        intruder.loop_start()
        try:
            intruder.publish("spBv1.0/g1/NBIRTH/dev2", b"forged", qos=1)
            assert acked.wait(10) and codes == [0x87]  # Not authorized
        finally:
            intruder.loop_stop()
            intruder.disconnect()

        born_with = bd_seq(host.sparkplug("NBIRTH")[-1])
        daemon.kill()
        host.wait_for(lambda ms: host.sparkplug("NDEATH"), 15, "the NDEATH will, allowed by the ACL")
        assert bd_seq(host.sparkplug("NDEATH")[0]) == born_with
        assert not any("dev2" in m.get("topic", "") for m in host.messages())
    finally:
        scada.loop_stop()
        scada.disconnect()
        daemon.close()
        host.close()
        sub.close()
