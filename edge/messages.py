"""Topics and payloads the device publishes. Pure functions: values in, strings and dicts out.

Topics under ``<prefix>/`` (for example ``plant/site/line/device/``):

``status``        retained ``online`` / ``offline`` (the last will says ``offline``)
``health``        retained ``ok`` / ``camera_fault`` / ``degraded``
``state/<roi>``   retained level, a plain string a PLC can compare: ``ok`` / ``warning`` / ``alert``
``event``         JSON on every level or health change, QoS 1, stored and forwarded (schemas/event.json)
``telemetry``     JSON every few seconds (schemas/telemetry.json)
``command``       (subscribed only when enabled) JSON commands (schemas/command.json)
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

EVENT_SCHEMA = "conveyor-watch/event/1"
TELEMETRY_SCHEMA = "conveyor-watch/telemetry/1"
ONLINE, OFFLINE = "online", "offline"


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


def iso_utc(wall: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-24T03:14:55.123Z."""
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class DeviceIdentity:
    """Who is speaking: put into every JSON payload."""

    site: str
    line: str
    device: str
    model_sha256: str


def level_event(identity: DeviceIdentity, *, event_id: str, seq: int, wall: float, roi: str, level: str,
                previous: str, probability: float, frame_seq: int, frame_wall: float) -> dict[str, Any]:
    """The payload for a change of alert level in one region of interest."""
    return {
        "schema": EVENT_SCHEMA,
        "type": "level",
        "event_id": event_id,
        "seq": seq,
        "time": iso_utc(wall),
        "site": identity.site,
        "line": identity.line,
        "device": identity.device,
        "roi": roi,
        "level": level,
        "previous": previous,
        "probability": round(float(probability), 4),
        "frame_seq": frame_seq,
        "frame_time": iso_utc(frame_wall),
        "model_sha256": identity.model_sha256,
        "replayed": False,
    }


def health_event(identity: DeviceIdentity, *, event_id: str, seq: int, wall: float, health: str,
                 previous: str, reason: str, frame_seq: int) -> dict[str, Any]:
    """The payload for a change of camera health (camera_fault, degraded, ok)."""
    return {
        "schema": EVENT_SCHEMA,
        "type": "health",
        "event_id": event_id,
        "seq": seq,
        "time": iso_utc(wall),
        "site": identity.site,
        "line": identity.line,
        "device": identity.device,
        "health": health,
        "previous": previous,
        "reason": reason,
        "frame_seq": frame_seq,
        "model_sha256": identity.model_sha256,
        "replayed": False,
    }


def telemetry(identity: DeviceIdentity, *, wall: float, stats: dict[str, Any]) -> dict[str, Any]:
    """The periodic telemetry payload; ``stats`` comes from :class:`edge.telemetry.Stats`."""
    return {"schema": TELEMETRY_SCHEMA, "time": iso_utc(wall), "site": identity.site, "line": identity.line,
            "device": identity.device, "model_sha256": identity.model_sha256, **stats, "replayed": False}


def encode(payload: dict[str, Any]) -> str:
    """Compact, stable JSON."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=False)


def mark_replayed(payload: str) -> str:
    """The same message, flagged as sent late (after a reconnect or restart)."""
    data = json.loads(payload)
    data["replayed"] = True
    return encode(data)
