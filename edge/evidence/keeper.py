"""EvidenceKeeper: the evidence recorder and capture mode as one feature of the daemon.

The daemon sees it twice: as its snapshot source (a reference for each change's event) and as a
frame observer; :meth:`close` at shutdown saves what is still being collected.
"""

from __future__ import annotations

from edge.events import HealthChanged, LevelChanged
from edge.evidence.capture import Capture
from edge.evidence.snapshots import EvidenceRecorder
from edge.pipeline import FrameResult
from edge.sources.base import Frame
from edge.state import DeviceState


class EvidenceKeeper:
    """Implements :class:`edge.daemon.SnapshotSource` and :class:`edge.daemon.FrameObserver`."""

    def __init__(self, recorder: EvidenceRecorder | None, capture: Capture | None) -> None:
        self.recorder = recorder
        self.capture = capture

    def snapshot_for(self, change: LevelChanged | HealthChanged) -> str | None:
        return self.recorder.snapshot_for(change) if self.recorder is not None else None

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        if self.recorder is not None:
            self.recorder.on_frame(frame, result, state)
        if self.capture is not None:
            self.capture.on_frame(frame, result, state)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.capture is not None:
            self.capture.close()
