"""Topics and payloads of the plain JSON interface. Pure functions: values in, strings out.

Topics under ``<prefix>/`` (for example ``plant/site/line/device/``):

``status``        retained one-tag summary: ``ok`` / ``warning`` / ``alert`` / ``unknown`` while the device
                  runs (the worst level over every ROI), ``offline`` when it stops or dies (the last will)
``health``        retained ``ok`` / ``camera_fault`` / ``degraded``
``motion``        retained ``moving`` / ``stopped`` / ``unknown``: belt motion seen in the picture (``belt:`` in the config)
``state/<roi>``   retained level, a plain string a PLC can compare: ``ok`` / ``warning`` / ``alert`` / ``unknown``
``event``         JSON on every level, health, belt, alarm or model change, QoS 1, stored and forwarded (schemas/event.json)
``telemetry``     JSON every few seconds, QoS 1, never stored (schemas/telemetry.json)
``alarm/<roi>``   retained JSON: the ROI's alarm record (ISA-18.2 state, who acknowledged it; schemas/alarm.json)
``command``       (subscribed only when enabled) JSON commands (schemas/command.json); replies on ``command/reply``
``snapshot/<id>`` a JPEG (QoS 1, not retained): the latest frame in answer to the ``snapshot`` command, or, with
                  ``evidence.mqtt_snapshot``, the frame of a level or health change (``<id>`` = the event's ``snapshot``)
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from edge.alarms import Alarm
from edge.events import AlarmChanged, BeltChanged, Change, HealthChanged, LevelChanged, ModelChanged, TelemetrySnapshot
from edge.state import DeviceState

EVENT_SCHEMA = "conveyor-watch/event/1"
TELEMETRY_SCHEMA = "conveyor-watch/telemetry/1"
REPLY_SCHEMA = "conveyor-watch/reply/1"
ALARM_SCHEMA = "conveyor-watch/alarm/1"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """Every topic of one device."""

    prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def health(self) -> str:
        return f"{self.prefix}/health"

    @property
    def motion(self) -> str:
        return f"{self.prefix}/motion"

    @property
    def event(self) -> str:
        return f"{self.prefix}/event"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}/telemetry"

    @property
    def command(self) -> str:
        return f"{self.prefix}/command"

    @property
    def command_reply(self) -> str:
        return f"{self.prefix}/command/reply"

    def state(self, roi: str) -> str:
        return f"{self.prefix}/state/{roi}"

    def alarm(self, roi: str) -> str:
        return f"{self.prefix}/alarm/{roi}"

    def snapshot(self, snapshot_id: str) -> str:
        return f"{self.prefix}/snapshot/{snapshot_id}"


def iso_utc(wall: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-24T03:14:55.123Z."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class DeviceIdentity:
    """Who is speaking: put into every JSON payload."""

    site: str
    line: str
    device: str


def _iso_or_none(wall: float | None) -> str | None:
    return None if wall is None else iso_utc(wall)


def alarm_fields(alarm: Alarm) -> dict[str, Any]:
    """An alarm record as JSON members (shared by the retained alarm topic and alarm events)."""
    return {"alarm": str(alarm.state), "active": alarm.state.active, "unacknowledged": alarm.state.unacknowledged,
            "since": _iso_or_none(alarm.since), "activated_at": _iso_or_none(alarm.activated_at),
            "acked_by": alarm.acked_by, "acked_at": _iso_or_none(alarm.acked_at)}


def alarm_payload(identity: DeviceIdentity, roi: str, alarm: Alarm) -> str:
    """The retained ``alarm/<roi>`` message (schemas/alarm.json)."""
    return encode({"schema": ALARM_SCHEMA, "site": identity.site, "line": identity.line, "device": identity.device,
                   "roi": roi, **alarm_fields(alarm)})


def retained_messages(topics: Topics, state: DeviceState, identity: DeviceIdentity | None = None) -> list[tuple[str, str, bool]]:
    """The retained view of ``state`` as (topic, payload, expires) triples.

    ``status`` carries the last will, so it must not expire; health and the per-ROI states expire
    (MQTT 5) so that a dead device leaves no stale level behind. Alarm records (with ``identity``)
    do not expire: an unacknowledged alarm stays unacknowledged while the device is away.
    """
    messages = [(topics.status, str(state.summary), False), (topics.health, str(state.health), True),
                (topics.motion, str(state.belt), True)]
    messages += [(topics.state(roi), str(level), True) for roi, level in state.levels]
    if identity is not None:
        messages += [(topics.alarm(roi), alarm_payload(identity, roi, alarm), False) for roi, alarm in state.alarms]
    return messages


def _envelope(identity: DeviceIdentity, change: Change, kind: str, event_id: str, seq: int,
              seq_epoch: str) -> dict[str, Any]:
    return {
        "schema": EVENT_SCHEMA,
        "type": kind,
        "event_id": event_id,
        "seq": seq,
        "seq_epoch": seq_epoch,
        "time": iso_utc(change.wall),
        "clock_synced": change.clock_synced,
        "site": identity.site,
        "line": identity.line,
        "device": identity.device,
        "model_sha256": change.model_sha256,
    }


def event_body(identity: DeviceIdentity, change: Change, *, event_id: str, seq: int,
               seq_epoch: str) -> str:
    """The stored JSON of an event (without ``replayed``: that is decided when it is sent)."""
    if isinstance(change, LevelChanged):
        body = _envelope(identity, change, "level", event_id, seq, seq_epoch) | {
            "roi": change.roi,
            "level": str(change.level),
            "previous": str(change.previous),
            "probability": round(float(change.probability), 4),
            "reason": change.reason,
            "frame_seq": change.frame_seq,
            "frame_time": iso_utc(change.frame_wall),
        }
    elif isinstance(change, AlarmChanged):
        body = _envelope(identity, change, "alarm", event_id, seq, seq_epoch) | {
            "roi": change.roi,
            **alarm_fields(change.alarm),
            "previous": str(change.previous),
            "level": str(change.level),
            "reason": change.reason,
        }
    elif isinstance(change, BeltChanged):
        body = _envelope(identity, change, "belt", event_id, seq, seq_epoch) | {
            "belt": str(change.belt),
            "previous": str(change.previous),
            "speed_px_s": None if change.speed_px_s is None else round(change.speed_px_s, 1),
            "reason": change.reason,
            "frame_seq": change.frame_seq,
        }
    elif isinstance(change, ModelChanged):
        body = _envelope(identity, change, "model", event_id, seq, seq_epoch) | {
            "action": change.action,
            "model": change.model,
            "previous_model": change.previous_model,
            "reason": change.reason,
            "by": change.by,
            "key_id": change.key_id,
            "generation": change.generation,
        }
    else:
        assert isinstance(change, HealthChanged)
        body = _envelope(identity, change, "health", event_id, seq, seq_epoch) | {
            "health": str(change.health),
            "previous": str(change.previous),
            "reason": change.reason,
            "frame_seq": change.frame_seq,
        }
    if isinstance(change, (LevelChanged, HealthChanged)) and change.snapshot is not None:
        body["snapshot"] = change.snapshot
    return encode(body)


def with_replayed(body: str, replayed: bool) -> str:
    """Add the ``replayed`` flag to a stored body.

    The body is our own compact JSON object (``encode``), so appending the member before its closing
    brace is exact; parsing and re-encoding every message of a 50,000-event backlog would not be cheap.
    """
    return f'{body[:-1]},"replayed":{"true" if replayed else "false"}}}'


def telemetry_payload(identity: DeviceIdentity, snapshot: TelemetrySnapshot) -> str:
    """The periodic telemetry message."""
    return encode({"schema": TELEMETRY_SCHEMA, "time": iso_utc(snapshot.wall), "clock_synced": snapshot.clock_synced,
                   "site": identity.site, "line": identity.line, "device": identity.device,
                   "model_sha256": snapshot.model_sha256, **snapshot.figures})


def encode(payload: dict[str, Any]) -> str:
    """Compact, stable JSON."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=False)
