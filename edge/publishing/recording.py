"""RecordingPublisher: the shipped test double for the publishing boundary.

Records every call as plain values so a daemon test can run without a broker (and, with
:class:`edge.fakes.FakeClassifier`, without a TFLite runtime).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from edge.events import Change, HealthChanged, LevelChanged, TelemetrySnapshot
from edge.publishing import LinkStatus
from edge.state import DeviceState


class RecordingPublisher:
    """Implements :class:`edge.publishing.Publisher` by remembering what it was told."""

    def __init__(self) -> None:
        self.states: list[DeviceState] = []
        self.changes: list[Change] = []
        self.snapshots: list[TelemetrySnapshot] = []
        self.started = False
        self.closed = False
        self.status = LinkStatus(connected=True, last_error=None, pending=0, dropped=0, durable=True, not_sent=0)
        self.updated = threading.Condition()

    def _record(self) -> None:
        with self.updated:
            self.updated.notify_all()

    def start(self, state: DeviceState) -> None:
        self.started = True
        self.states.append(state)
        self._record()

    def state_changed(self, state: DeviceState) -> None:
        self.states.append(state)
        self._record()

    def changed(self, change: Change) -> None:
        self.changes.append(change)
        self._record()

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        self.snapshots.append(snapshot)
        self._record()

    def link_status(self) -> LinkStatus:
        return self.status

    def close(self) -> None:
        self.closed = True
        self._record()

    # --- for assertions ----------------------------------------------------------------------------

    @property
    def level_changes(self) -> list[LevelChanged]:
        return [c for c in self.changes if isinstance(c, LevelChanged)]

    @property
    def health_changes(self) -> list[HealthChanged]:
        return [c for c in self.changes if isinstance(c, HealthChanged)]

    def transitions(self, roi: str) -> list[tuple[str, str]]:
        """(previous, level) of every level change of ``roi``, in order."""
        return [(str(c.previous), str(c.level)) for c in self.level_changes if c.roi == roi]

    def wait_for(self, predicate: Callable[[RecordingPublisher], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` is true (for tests that run the daemon in a thread)."""
        with self.updated:
            return bool(self.updated.wait_for(lambda: predicate(self), timeout))
