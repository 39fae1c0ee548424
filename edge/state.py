"""What the device currently says about the belt: levels, camera health and their summary.

Plain values, no I/O. The daemon owns one :class:`DeviceState` at a time and replaces it when
something changes; publishers turn it into retained messages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from edge.alarms import Alarm


class Level(StrEnum):
    """The flow level of one region of interest, as a PLC reads it."""

    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"
    UNKNOWN = "unknown"  # the device cannot judge: camera fault, degraded picture, a scene that is not the belt


class Health(StrEnum):
    """Whether the camera gives pictures the model can judge."""

    OK = "ok"
    CAMERA_FAULT = "camera_fault"
    DEGRADED = "degraded"


class Belt(StrEnum):
    """Whether the belt moves, as seen in the picture (edge.motion)."""

    MOVING = "moving"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # not judged yet, or not judged at all (belt.enabled: false), or the camera cannot see


# For the one-tag summary: an alarm outranks not knowing, and not knowing outranks a warning.
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.ALERT: 3}


@dataclass(frozen=True)
class DeviceState:
    """The published state: each ROI's level (in config order), the camera's health, and each ROI's
    alarm record (empty when the daemon keeps no alarms, e.g. in a test)."""

    health: Health
    levels: tuple[tuple[str, Level], ...]
    alarms: tuple[tuple[str, Alarm], ...] = ()
    belt: Belt = Belt.UNKNOWN
    stopped_level: Level = Level.ALERT  # what a stopped belt adds to the summary (config belt.status_when_stopped)

    @classmethod
    def starting(cls, rois: list[str], alarms: dict[str, Alarm] | None = None, stopped_level: Level = Level.ALERT) -> DeviceState:
        """Before the first judged frame nothing is known; alarms carry on from before a restart."""
        alarms = alarms or {}
        return cls(Health.OK, tuple((roi, Level.UNKNOWN) for roi in rois), tuple((roi, alarms.get(roi, Alarm())) for roi in rois),
                   stopped_level=stopped_level)

    def level(self, roi: str) -> Level:
        return dict(self.levels)[roi]

    def alarm(self, roi: str) -> Alarm:
        return dict(self.alarms).get(roi, Alarm())

    def with_alarms(self, alarms: dict[str, Alarm]) -> DeviceState:
        return replace(self, alarms=tuple((roi, alarms.get(roi, alarm)) for roi, alarm in self.alarms))

    @property
    def summary(self) -> Level:
        """The worst level over every ROI (and a stopped belt's level): the single tag a simple PLC reads."""
        levels = [level for _, level in self.levels]
        if self.belt == Belt.STOPPED:
            levels.append(self.stopped_level)
        return max(levels, key=SEVERITY.__getitem__, default=Level.UNKNOWN)

    def with_levels(self, levels: dict[str, Level]) -> DeviceState:
        return replace(self, levels=tuple((roi, levels.get(roi, level)) for roi, level in self.levels))

    def with_health(self, health: Health) -> DeviceState:
        return replace(self, health=health)
