"""Console: the commissioning console as the daemon sees it, registered once in start-up.

A frame observer (the latest frame and result, for the live view) and a publisher (the device
state, the changes and telemetry); :meth:`start` starts the HTTP server, :meth:`close` stops it.
Every call returns at once: it only leaves references in :class:`edge.console.live.LiveState`.
If the server cannot listen, the daemon goes on watching the belt without it.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.console.live import LiveState
from edge.console.server import ConsoleParts, ConsoleServer
from edge.events import Change, TelemetrySnapshot
from edge.pipeline import FrameResult
from edge.publishing import LinkStatus
from edge.sources.base import Frame
from edge.state import DeviceState


class Console:
    """Implements :class:`edge.publishing.Publisher` and :class:`edge.daemon.FrameObserver`."""

    def __init__(self, parts: ConsoleParts, announce: Callable[[str], None] | None = None) -> None:
        self.live: LiveState = parts.live
        self.server = ConsoleServer(parts, announce)

    @property
    def url(self) -> str | None:
        return self.server.url

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        self.live.on_frame(frame, result, state)

    def start(self, state: DeviceState) -> None:
        self.live.start(state)
        self.server.start()

    def state_changed(self, state: DeviceState) -> None:
        self.live.state_changed(state)

    def changed(self, change: Change) -> None:
        self.live.changed(change)

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        self.live.telemetry_figures(snapshot.figures)

    def link_status(self) -> LinkStatus:
        """The console has no link of its own (Publishers asks the MQTT publisher)."""
        return LinkStatus(connected=True, last_error=None, pending=0, dropped=0, durable=True, not_sent=0)

    def close(self) -> None:
        self.server.close()
