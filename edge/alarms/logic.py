"""One ROI's alarm record and its transitions (see the package docstring for the state diagram)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class AlarmState(StrEnum):
    """ISA-18.2's four basic states, as a PLC or SCADA reads them."""

    NORMAL = "normal"
    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active_acknowledged"
    RETURNED_UNACKNOWLEDGED = "returned_unacknowledged"

    @property
    def active(self) -> bool:
        """The alarm condition holds now."""
        return self in (AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED)

    @property
    def unacknowledged(self) -> bool:
        """An operator still has to acknowledge it."""
        return self in (AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.RETURNED_UNACKNOWLEDGED)


class AcknowledgeRefused(Exception):
    """There is nothing to acknowledge; the message says why."""


@dataclass(frozen=True)
class Alarm:
    """One ROI's alarm: its state, since when, and who acknowledged it last (wall-clock seconds)."""

    state: AlarmState = AlarmState.NORMAL
    since: float | None = None  # when this state was entered (None: never alarmed)
    activated_at: float | None = None  # when the condition last became true
    acked_by: str | None = None
    acked_at: float | None = None

    def condition(self, active: bool | None, wall: float) -> Alarm:
        """The alarm condition is ``active`` (None: the device cannot tell, nothing changes)."""
        if active is None:
            return self
        if active and not self.state.active:  # raised (again): a new alarm, not yet acknowledged
            return Alarm(AlarmState.ACTIVE_UNACKNOWLEDGED, since=wall, activated_at=wall)
        if not active and self.state == AlarmState.ACTIVE_UNACKNOWLEDGED:
            return replace(self, state=AlarmState.RETURNED_UNACKNOWLEDGED, since=wall)
        if not active and self.state == AlarmState.ACTIVE_ACKNOWLEDGED:
            return replace(self, state=AlarmState.NORMAL, since=wall)
        return self

    def acknowledge(self, by: str, wall: float) -> Alarm:
        """An operator acknowledged it; raises :class:`AcknowledgeRefused` when there is nothing to acknowledge."""
        if self.state == AlarmState.ACTIVE_UNACKNOWLEDGED:
            return replace(self, state=AlarmState.ACTIVE_ACKNOWLEDGED, since=wall, acked_by=by, acked_at=wall)
        if self.state == AlarmState.RETURNED_UNACKNOWLEDGED:
            return replace(self, state=AlarmState.NORMAL, since=wall, acked_by=by, acked_at=wall)
        if self.state == AlarmState.ACTIVE_ACKNOWLEDGED:
            raise AcknowledgeRefused(f"already acknowledged by {self.acked_by}")
        raise AcknowledgeRefused("nothing to acknowledge: the alarm is normal")


def condition_of(level: str) -> bool | None:
    """The alarm condition a flow level stands for: ``alert`` raises, ``ok``/``warning`` clear, else unknown."""
    if level == "alert":
        return True
    if level in ("ok", "warning"):
        return False
    return None
