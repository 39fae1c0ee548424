"""What happened, as plain values: the daemon reports these to its publishers.

Each carries the wall-clock time it happened and whether that clock was synchronised then,
so a message built later (or sent again after an outage) still says when it really happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.alarms import Alarm, AlarmState
from edge.state import Belt, Health, Level


@dataclass(frozen=True)
class LevelChanged:
    """The published level of one region of interest changed."""

    roi: str
    level: Level
    previous: Level
    probability: float  # the smoothed alert probability when it changed
    reason: str  # why: "flow" for a judged change, else why the device cannot judge
    frame_seq: int
    frame_wall: float
    wall: float
    clock_synced: bool
    model_sha256: str  # the model that decided it
    snapshot: str | None = None  # the evidence record of its frames (edge.evidence), when kept


@dataclass(frozen=True)
class HealthChanged:
    """The camera's health changed."""

    health: Health
    previous: Health
    reason: str
    frame_seq: int
    wall: float
    clock_synced: bool
    model_sha256: str
    snapshot: str | None = None  # the evidence record of its frames (edge.evidence), when kept


@dataclass(frozen=True)
class BeltChanged:
    """The belt stopped or moves again (edge.motion), as seen in the picture."""

    belt: Belt
    previous: Belt
    speed_px_s: float | None  # the belt speed in frame pixels per second when it changed (None: no reliable reading)
    reason: str
    frame_seq: int
    wall: float
    clock_synced: bool
    model_sha256: str


@dataclass(frozen=True)
class AlarmChanged:
    """The alarm of one region of interest changed state: raised, cleared or acknowledged."""

    roi: str
    alarm: Alarm  # the record after the change (state, since, acked_by, acked_at)
    previous: AlarmState
    reason: str  # "level alert", "level ok", "acknowledged", ...
    level: Level  # the ROI's level when it changed
    wall: float
    clock_synced: bool
    model_sha256: str


@dataclass(frozen=True)
class TelemetrySnapshot:
    """Periodic figures (fps, latencies, counters, connection and outbox state)."""

    figures: dict[str, Any]
    wall: float
    clock_synced: bool
    model_sha256: str


@dataclass(frozen=True)
class ModelChanged:
    """The device's model changed, or a change was refused (edge.modelstore): ``installed`` (a new candidate),
    ``promoted``, ``rolled_back``, ``refused``, or a shadow run's verdict (``shadow_passed``, ``shadow_failed``,
    ``shadow_incomplete``)."""

    action: str
    model: str | None  # the model concerned (its int8 sha256); None: not known (a bundle that could not be read)
    previous_model: str | None  # the model active before (promoted, rolled_back)
    reason: str
    by: str  # cli, command, auto, startup, console
    key_id: str | None  # the key that signed the model concerned (None: unsigned or not known)
    generation: int | None  # the registry change this reports (None: the daemon's own observation)
    wall: float
    clock_synced: bool
    model_sha256: str  # the model deciding once the change is done


Change = LevelChanged | HealthChanged | AlarmChanged | ModelChanged | BeltChanged
