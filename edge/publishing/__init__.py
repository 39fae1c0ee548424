"""The publishing boundary: the daemon says what happened; publishers turn it into messages.

    Publisher           the protocol the daemon talks to
    Publishers          fans the same calls out to several publishers (plain JSON, later Sparkplug B)
    PlainJsonPublisher  (plain.py) the plain topics: status, health, state/<roi>, event, telemetry, commands
    RecordingPublisher  (recording.py) the shipped test double: records every call

A publisher never blocks the caller: storage and network I/O happen on its transport's thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edge.events import Change, TelemetrySnapshot
from edge.state import DeviceState


@dataclass(frozen=True)
class LinkStatus:
    """How a publisher's connection is doing, for telemetry and ``systemctl status``."""

    connected: bool
    last_error: str | None
    pending: int  # events stored, not yet acknowledged
    dropped: int  # events dropped because the outbox was full
    durable: bool  # False while the outbox is in memory
    not_sent: int  # passing messages (telemetry, replies) dropped while offline


class Publisher(Protocol):
    """What the daemon needs from whatever publishes its results."""

    def start(self, state: DeviceState) -> None:
        """Connect in the background and publish the initial state."""

    def state_changed(self, state: DeviceState) -> None:
        """The published levels or health changed (retained view)."""

    def changed(self, change: Change) -> None:
        """A level or health change happened: an event to store and deliver."""

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        """Periodic figures."""

    def link_status(self) -> LinkStatus:
        """The connection and backlog, as of now."""

    def close(self) -> None:
        """Say goodbye (offline, states unknown), flush what can be flushed, disconnect."""


class Publishers:
    """Several publishers behind one: each call goes to every one, in order."""

    def __init__(self, publishers: Sequence[Publisher]) -> None:
        self.publishers = list(publishers)

    def start(self, state: DeviceState) -> None:
        for p in self.publishers:
            p.start(state)

    def state_changed(self, state: DeviceState) -> None:
        for p in self.publishers:
            p.state_changed(state)

    def changed(self, change: Change) -> None:
        for p in self.publishers:
            p.changed(change)

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        for p in self.publishers:
            p.telemetry(snapshot)

    def link_status(self) -> LinkStatus:
        """The first publisher's link (the plain JSON one) speaks for all in telemetry."""
        return self.publishers[0].link_status()

    def close(self) -> None:
        for p in self.publishers:
            p.close()


__all__ = ["LinkStatus", "Publisher", "Publishers"]
