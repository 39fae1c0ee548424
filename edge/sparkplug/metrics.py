"""What the edge node and each ROI device publish: topics, the metric catalogue, and views. Pure.

The device is one Sparkplug **Edge Node** (``edge_node_id``, default the device name); each region
of interest is a **Device** under it (``device_id`` = the ROI name). Aliases are fixed by the config
(node metrics 1..99, ROI number *i* (from 0) uses 1000*(i+1)+k), so they are the same in every
session, and unique across the node's whole metric set as the specification requires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from edge.alarms import Alarm
from edge.sparkplug.payloads import DataType, MetricSpec, Reading, Value

NAMESPACE = "spBv1.0"


@dataclass(frozen=True)
class SparkplugTopics:
    group_id: str
    edge_node_id: str

    def node(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}"

    def device(self, kind: str, roi: str) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}/{roi}"

    @staticmethod
    def state(host_id: str) -> str:
        return f"{NAMESPACE}/STATE/{host_id}"


class Node:
    """The edge node's metrics."""

    BD_SEQ = MetricSpec("bdSeq", 1, DataType.INT64)
    REBIRTH = MetricSpec("Node Control/Rebirth", 2, DataType.BOOLEAN)  # a host writes true to ask for births
    STATUS = MetricSpec("Status", 3, DataType.STRING)  # worst level over every ROI
    HEALTH = MetricSpec("Camera Health", 4, DataType.STRING)
    MODEL = MetricSpec("Model SHA256", 5, DataType.STRING)
    RUNTIME = MetricSpec("Runtime", 6, DataType.STRING)
    FPS = MetricSpec("FPS", 7, DataType.FLOAT)
    CLOCK_SYNCED = MetricSpec("Clock Synced", 8, DataType.BOOLEAN)
    VERSION = MetricSpec("Properties/Software Version", 9, DataType.STRING)
    SITE = MetricSpec("Properties/Site", 10, DataType.STRING)
    LINE = MetricSpec("Properties/Line", 11, DataType.STRING)
    BELT = MetricSpec("Belt/State", 12, DataType.STRING)  # moving / stopped / unknown (edge.motion)
    BELT_SPEED = MetricSpec("Belt/Speed", 13, DataType.FLOAT)  # frame pixels per second; null without a reliable reading
    ALL = (BD_SEQ, REBIRTH, STATUS, HEALTH, MODEL, RUNTIME, FPS, CLOCK_SYNCED, VERSION, SITE, LINE, BELT, BELT_SPEED)


# Device (ROI) metrics: (name, offset from the ROI's alias base, datatype)
LEVEL = "Level"
PROBABILITY = "Probability"
ALARM_STATE = "Alarm/State"
ALARM_ACTIVE = "Alarm/Active"
ALARM_UNACKNOWLEDGED = "Alarm/Unacknowledged"
ALARM_ACKED_BY = "Alarm/Acked By"
ALARM_ACKED_AT = "Alarm/Acked At"
ALARM_ACKNOWLEDGE = "Alarm/Acknowledge"  # a host writes the operator's name to acknowledge
SNAPSHOT = "Snapshot/Reference"
TAKE_SNAPSHOT = "Device Control/Snapshot"  # a host writes true to get a JPEG of the latest frame
DEVICE_REBIRTH = "Device Control/Rebirth"
DEVICE_METRICS = ((LEVEL, 1, DataType.STRING), (PROBABILITY, 2, DataType.FLOAT), (ALARM_STATE, 3, DataType.STRING),
                  (ALARM_ACTIVE, 4, DataType.BOOLEAN), (ALARM_UNACKNOWLEDGED, 5, DataType.BOOLEAN),
                  (ALARM_ACKED_BY, 6, DataType.STRING), (ALARM_ACKED_AT, 7, DataType.DATETIME),
                  (ALARM_ACKNOWLEDGE, 8, DataType.STRING), (SNAPSHOT, 9, DataType.STRING),
                  (TAKE_SNAPSHOT, 10, DataType.BOOLEAN), (DEVICE_REBIRTH, 11, DataType.BOOLEAN))


class Catalogue:
    """Every metric of the node and its ROI devices, by name and by alias."""

    def __init__(self, rois: Sequence[str]) -> None:
        self.node = {m.name: m for m in Node.ALL}
        self.rois: list[str] = []
        self.devices: dict[str, dict[str, MetricSpec]] = {}
        self.set_rois(rois)

    def set_rois(self, rois: Sequence[str]) -> None:
        """The devices after the ROIs changed (the console's lane editor): aliases are numbered afresh,
        which is allowed because a rebirth announces them again."""
        devices = {roi: {name: MetricSpec(name, 1000 * (i + 1) + offset, datatype) for name, offset, datatype in DEVICE_METRICS}
                   for i, roi in enumerate(rois)}
        self.devices, self.rois = devices, list(rois)  # each a single assignment: readers on other threads see old or new

    def spec(self, device: str | None, name: str) -> MetricSpec:
        return self.node[name] if device is None else self.devices[device][name]

    def named(self, device: str | None, name: str | None, alias: int | None) -> str | None:
        """The name of a metric a command refers to by name or alias (None if it is not ours)."""
        metrics = self.node if device is None else self.devices.get(device, {})
        if name is not None:
            return name if name in metrics else None
        return next((m.name for m in metrics.values() if m.alias == alias), None)


@dataclass(frozen=True)
class DeviceView:
    """What one ROI device says now."""

    level: str = "unknown"
    probability: float | None = None
    alarm: Alarm = field(default_factory=Alarm)
    snapshot: str = ""
    alive: bool = True


@dataclass(frozen=True)
class NodeView:
    """What the edge node says now: read by births, replaced whole by the publisher."""

    status: str
    health: str
    model_sha256: str
    runtime: str
    version: str
    site: str
    line: str
    fps: float | None = None
    clock_synced: bool | None = None
    belt: str = "unknown"
    belt_speed: float | None = None
    devices: dict[str, DeviceView] = field(default_factory=dict)

    def device(self, roi: str) -> DeviceView:
        return self.devices.get(roi, DeviceView())

    def with_device(self, roi: str, **changes: object) -> NodeView:
        return replace(self, devices={**self.devices, roi: replace(self.device(roi), **changes)})  # type: ignore[arg-type]


def alarm_values(alarm: Alarm) -> list[tuple[str, Value]]:
    return [(ALARM_STATE, str(alarm.state)), (ALARM_ACTIVE, alarm.state.active),
            (ALARM_UNACKNOWLEDGED, alarm.state.unacknowledged), (ALARM_ACKED_BY, alarm.acked_by or ""),
            (ALARM_ACKED_AT, None if alarm.acked_at is None else round(alarm.acked_at * 1000))]


def node_readings(catalogue: Catalogue, view: NodeView, bd_seq: int, now_ms: int) -> list[Reading]:
    values: list[tuple[MetricSpec, Value]] = [
        (Node.BD_SEQ, bd_seq), (Node.REBIRTH, False), (Node.STATUS, view.status), (Node.HEALTH, view.health),
        (Node.MODEL, view.model_sha256), (Node.RUNTIME, view.runtime), (Node.FPS, view.fps),
        (Node.CLOCK_SYNCED, view.clock_synced), (Node.VERSION, view.version), (Node.SITE, view.site), (Node.LINE, view.line),
        (Node.BELT, view.belt), (Node.BELT_SPEED, view.belt_speed)]
    return [Reading(spec, value, now_ms) for spec, value in values]


def device_readings(catalogue: Catalogue, roi: str, view: DeviceView, now_ms: int) -> list[Reading]:
    values: list[tuple[str, Value]] = [(LEVEL, view.level), (PROBABILITY, view.probability), *alarm_values(view.alarm),
                                       (ALARM_ACKNOWLEDGE, ""), (SNAPSHOT, view.snapshot), (TAKE_SNAPSHOT, False),
                                       (DEVICE_REBIRTH, False)]
    return [Reading(catalogue.spec(roi, name), value, now_ms) for name, value in values]
