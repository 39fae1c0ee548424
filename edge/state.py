"""What the device currently says about the belt: levels, camera health and their summary.

Plain values, no I/O. The daemon owns one :class:`DeviceState` at a time and replaces it when
something changes; publishers turn it into retained messages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


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


# For the one-tag summary: an alarm outranks not knowing, and not knowing outranks a warning.
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.ALERT: 3}


@dataclass(frozen=True)
class DeviceState:
    """The published state: each ROI's level (in config order) and the camera's health."""

    health: Health
    levels: tuple[tuple[str, Level], ...]

    @classmethod
    def starting(cls, rois: list[str]) -> DeviceState:
        """Before the first judged frame nothing is known."""
        return cls(Health.OK, tuple((roi, Level.UNKNOWN) for roi in rois))

    def level(self, roi: str) -> Level:
        return dict(self.levels)[roi]

    @property
    def summary(self) -> Level:
        """The worst level over every ROI: the single tag a simple PLC reads."""
        return max((level for _, level in self.levels), key=SEVERITY.__getitem__, default=Level.UNKNOWN)

    def with_levels(self, levels: dict[str, Level]) -> DeviceState:
        return replace(self, levels=tuple((roi, levels.get(roi, level)) for roi, level in self.levels))

    def with_health(self, health: Health) -> DeviceState:
        return replace(self, health=health)
