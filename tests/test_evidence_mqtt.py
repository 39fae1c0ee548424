"""Evidence and lanes as a subscriber sees them on a real Mosquitto."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import validate
from PIL import Image

from edge.messages import DeviceIdentity, Topics
from edge.mqtt import MqttSettings, MqttTransport
from edge.outbox import Outbox
from edge.publishing.plain import PlainJsonPublisher
from edge.state import DeviceState, Health, Level

pytestmark = [pytest.mark.broker, pytest.mark.output_side]


def test_each_event_names_its_snapshot_and_the_snapshot_topic_carries_its_jpeg(tmp_path: Path, mosquitto: Mosquitto,
                                                                                 subscribe) -> None:  # type: ignore[no-untyped-def]
    """With evidence.mqtt_snapshot: every level event's `snapshot` id has its JPEG on <prefix>/snapshot/<id>."""
    sub = subscribe(mosquitto)
    config = daemon_config(tmp_path, mosquitto, source={"duration_s": 12.0, "drops": [{"start_s": 3.0, "duration_s": 4.0}]},
                           evidence={"mqtt_snapshot": True, "mqtt_width": 100, "spacing_s": 0.2})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    try:
        assert daemon.wait(60) == 0, daemon.log()
    finally:
        daemon.close()
    sub.wait_for(lambda ms: len([m for m in ms if "/snapshot/" in m.topic]) >= 2, 10, "two snapshots")
    for message in sub.messages:
        validate(message)
    events = [e for e in sub.events() if e["reason"] == "flow"]
    snapshots = {m.topic.rsplit("/", 1)[1]: m.raw for m in sub.messages if "/snapshot/" in m.topic}
    assert [(e["previous"], e["level"]) for e in events] == [("ok", "alert"), ("alert", "ok")]
    assert sorted(snapshots) == sorted(e["snapshot"] for e in events)
    for event in events:
        with Image.open(io.BytesIO(snapshots[event["snapshot"]])) as image:
            assert image.format == "JPEG" and image.size == (80, 60)  # 160x120 frames, every 2nd pixel (<= 100 wide)
    # ... and the frames are on the device under the state directory, by the same id.
    assert all((tmp_path / "state" / "evidence" / e["snapshot"] / "meta.json").is_file() for e in events)


def test_a_lane_removed_from_the_config_leaves_no_retained_state_behind(tmp_path: Path, mosquitto: Mosquitto,
                                                                         subscribe) -> None:  # type: ignore[no-untyped-def]
    """The plain publisher clears state/<roi> of a ROI that is gone, so a late subscriber never reads it."""
    topics = Topics("plant/s/l/d")
    transport = MqttTransport(MqttSettings(mosquitto.host, mosquitto.port, "lanes", topics.status, "offline", reconnect_min_s=0.1),
                              Outbox(tmp_path / "o.sqlite", 100))
    publisher = PlainJsonPublisher(DeviceIdentity("s", "l", "d"), topics, transport)
    publisher.start(DeviceState(Health.OK, (("belt", Level.OK), ("lane-b", Level.ALERT))))
    try:
        early = subscribe(mosquitto)
        early.wait_for(lambda ms: any(m.topic.endswith("/state/lane-b") for m in ms), 10, "state/lane-b")
        publisher.state_changed(DeviceState(Health.OK, (("belt", Level.OK),)))
        early.wait_for(lambda ms: any(m.topic.endswith("/state/lane-b") and m.payload == "" for m in ms), 10, "lane-b cleared")
        late = subscribe(mosquitto)
        late.wait_for(lambda ms: any(m.topic.endswith("/state/belt") for m in ms), 10, "the retained belt state")
        wait_until(lambda: transport.status().connected, 5, "connected")
        assert not [m for m in late.messages if m.topic.endswith("/state/lane-b")]
    finally:
        transport.stop()
