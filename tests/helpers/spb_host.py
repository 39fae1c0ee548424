"""An independent Sparkplug B host application for the tests: runs in .venv-spb ONLY.

It uses pysparkplug (its own protobuf module, compiled from Eclipse Tahu's .proto) with its own
paho-mqtt 1.x, and nothing of conveyor-watch: whatever it decodes, it decodes without our code.

    .venv-spb/bin/python tests/helpers/spb_host.py --port P --group G --out messages.jsonl [--host-id H]

Every message under ``spBv1.0/`` becomes one JSON line in ``--out``: the topic, message type, seq,
timestamp, and each metric with its name resolved through the births (as a host does), whether the
name was on the wire, its alias, datatype, value and ``is_historical``. With ``--host-id`` it acts
as that primary host: STATE online (retained, will offline) when it connects.

Commands on standard input, one per line:
    rebirth NODE              NCMD Node Control/Rebirth = true
    ack NODE ROI OPERATOR     DCMD Alarm/Acknowledge = OPERATOR
    snapshot NODE ROI         DCMD Device Control/Snapshot = true
    offline                   publish STATE online=false (like a host that is going away) and disconnect
    online                    connect again: STATE online=true with a new timestamp
    quit
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pysparkplug as spb
from pysparkplug import _protobuf as tahu_pb  # pysparkplug's own generated classes (Tahu's proto)


def plain(value: Any) -> Any:
    """A decoded value as JSON: DateTime as ms since the epoch, bytes as hex."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return value.hex()
    return value


class Host:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = open(args.out, "a", buffering=1)
        self.births: dict[tuple[str | None, str | None, str | None], Any] = {}
        self.lock = threading.Lock()
        self.client: mqtt.Client | None = None
        self.state_timestamp = 0

    def record(self, entry: dict[str, Any]) -> None:
        entry["received"] = time.time()
        with self.lock:
            self.out.write(json.dumps(entry) + "\n")

    def connect(self) -> None:
        client = mqtt.Client(client_id=f"spb-host-{self.args.host_id or 'observer'}-{time.monotonic_ns()}", clean_session=True)
        if self.args.host_id:
            self.state_timestamp = max(int(time.time() * 1000), self.state_timestamp + 1)
            will = json.dumps({"online": False, "timestamp": self.state_timestamp})
            client.will_set(f"spBv1.0/STATE/{self.args.host_id}", will, qos=1, retain=True)
        if self.args.username:
            client.username_pw_set(self.args.username, self.args.password)
        client.on_connect = self.on_connect
        client.on_message = self.on_message
        client.connect(self.args.broker, self.args.port, keepalive=30)
        client.loop_start()
        self.client = client

    def on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: int) -> None:
        if rc != 0:
            self.record({"event": "refused", "rc": rc})
            return
        client.subscribe("spBv1.0/#", qos=1)
        if self.args.host_id:
            client.publish(f"spBv1.0/STATE/{self.args.host_id}",
                           json.dumps({"online": True, "timestamp": self.state_timestamp}), qos=1, retain=True)
        self.record({"event": "connected"})

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self.decode(message)
        except Exception as exc:  # record, never kill the network loop
            self.record({"topic": message.topic, "error": f"{type(exc).__name__}: {exc}"})

    def decode(self, message: mqtt.MQTTMessage) -> None:
        topic = spb.Topic.from_str(message.topic)
        entry: dict[str, Any] = {"topic": message.topic, "type": str(topic.message_type), "retain": bool(message.retain),
                                 "qos": message.qos}
        if topic.message_type == spb.MessageType.STATE:
            state = spb.State.decode(message.payload)
            entry.update(online=state.online, timestamp=state.timestamp)
            self.record(entry)
            return
        key = (topic.group_id, topic.edge_node_id, topic.device_id)
        birth = self.births.get(key) if topic.message_type in (spb.MessageType.NDATA, spb.MessageType.DDATA) else None
        decoded = spb.Message.from_mqtt_message(message, birth=birth).payload
        if isinstance(decoded, (spb.NBirth, spb.DBirth)):
            self.births[key] = decoded
        raw = tahu_pb.Payload.FromString(message.payload)  # what was on the wire (names present or not)
        entry.update(node=topic.edge_node_id, device=topic.device_id,
                     seq=raw.seq if raw.HasField("seq") else None,
                     timestamp=raw.timestamp if raw.HasField("timestamp") else None)
        if isinstance(decoded, spb.NDeath):
            metrics = [decoded.bd_seq_metric]
        elif isinstance(decoded, spb.DDeath):
            metrics = []
        else:
            metrics = list(decoded.metrics)
        entry["metrics"] = [{
            "name": metric.name, "alias": metric.alias, "name_on_wire": raw_metric.HasField("name"),
            "datatype": int(metric.datatype), "value": plain(metric.value),
            "historical": metric.is_historical, "null": metric.is_null, "timestamp": metric.timestamp,
        } for metric, raw_metric in zip(metrics, raw.metrics, strict=False)]
        self.record(entry)

    def command(self, line: str) -> None:
        words = line.split()
        assert self.client is not None
        now = spb.get_current_timestamp()
        if words[:1] == ["rebirth"]:
            payload = spb.NCmd(timestamp=now, metrics=(spb.Metric(timestamp=now, name="Node Control/Rebirth",
                                                                  datatype=spb.DataType.BOOLEAN, value=True),))
            self.client.publish(f"spBv1.0/{self.args.group}/NCMD/{words[1]}", payload.encode(include_dtypes=True), qos=0)
        elif words[:1] == ["ack"]:
            payload = spb.DCmd(timestamp=now, metrics=(spb.Metric(timestamp=now, name="Alarm/Acknowledge",
                                                                  datatype=spb.DataType.STRING, value=" ".join(words[3:])),))
            self.client.publish(f"spBv1.0/{self.args.group}/DCMD/{words[1]}/{words[2]}", payload.encode(include_dtypes=True), qos=0)
        elif words[:1] == ["snapshot"]:
            payload = spb.DCmd(timestamp=now, metrics=(spb.Metric(timestamp=now, name="Device Control/Snapshot",
                                                                  datatype=spb.DataType.BOOLEAN, value=True),))
            self.client.publish(f"spBv1.0/{self.args.group}/DCMD/{words[1]}/{words[2]}", payload.encode(include_dtypes=True), qos=0)
        elif words[:1] == ["offline"]:
            info = self.client.publish(f"spBv1.0/STATE/{self.args.host_id}",
                                       json.dumps({"online": False, "timestamp": int(time.time() * 1000)}), qos=1, retain=True)
            info.wait_for_publish(5)
            self.client.disconnect()
            self.client.loop_stop()
            self.record({"event": "offline"})
        elif words[:1] == ["online"]:
            self.connect()
        self.record({"event": "command", "line": line})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--host-id")
    parser.add_argument("--username")
    parser.add_argument("--password")
    args = parser.parse_args()
    host = Host(args)
    host.connect()
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        if line.strip():
            host.command(line.strip())
    if host.client is not None:
        host.client.disconnect()
        host.client.loop_stop()


if __name__ == "__main__":
    main()
