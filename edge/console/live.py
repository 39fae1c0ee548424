"""LiveState: what the console shows, handed over from the frame loop without locks or copies.

The frame loop calls :meth:`LiveState.on_frame` (a frame observer): it stores references to the
latest frame, result and state, counts the frame for the frame rate and, at most ten times a
second, appends the ROIs' probabilities to a one-minute history. That is all it does: no encoding,
no allocation beyond one small tuple. Python's attribute stores and ``deque.append`` are atomic,
so the console's thread reads a consistent reference at any time.

As a publisher it keeps the latest device state, the recent changes (for the events page) and the
latest telemetry figures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.events import Change
from edge.evidence.snapshots import change_summary
from edge.health import sharpness
from edge.pipeline import FrameResult
from edge.preprocess import Box
from edge.publishing import LinkStatus
from edge.sources.base import Frame
from edge.state import DeviceState

HISTORY_S = 60.0
SAMPLE_INTERVAL_S = 0.1
RECENT_CHANGES = 300
METER_SIDE = 192  # the focus meter looks at the central METER_SIDE x METER_SIDE pixels at full resolution (small temporaries)


@dataclass(frozen=True)
class Sample:
    """The ROIs' probabilities at one moment (wall-clock seconds)."""

    wall: float
    rois: tuple[str, ...]
    probabilities: tuple[float, ...]
    smoothed: tuple[float, ...]


@dataclass(frozen=True)
class Latest:
    frame: Frame
    result: FrameResult
    state: DeviceState
    rois: list[tuple[str, Box]]


def meters(pixels: npt.NDArray[np.uint8]) -> dict[str, float]:
    """Aiming aids for a frame: focus (Laplacian variance of the centre at full resolution), brightness
    (mean grey level 0-255) and the fractions of clipped-white and crushed-black pixels."""
    h, w = pixels.shape[:2]
    top, left = max(0, (h - METER_SIDE) // 2), max(0, (w - METER_SIDE) // 2)
    centre = pixels[top:top + METER_SIDE, left:left + METER_SIDE].mean(axis=2, dtype=np.float32)
    step = max(1, min(h, w) // 120)
    grey = pixels[::step, ::step].mean(axis=2, dtype=np.float32)
    return {"focus": round(sharpness(centre), 1), "brightness": round(float(grey.mean()), 1),
            "clipped": round(float((grey >= 250).mean()), 4), "dark": round(float((grey <= 5).mean()), 4)}


class LiveState:
    """Frame observer and publisher that keeps what the console reads (see the module docstring)."""

    def __init__(self, rois: Callable[[], list[tuple[str, Box]]]) -> None:
        self._rois = rois
        self.latest: Latest | None = None
        self.state: DeviceState | None = None
        self.history: deque[Sample] = deque(maxlen=int(HISTORY_S / SAMPLE_INTERVAL_S) + 1)
        self.frame_times: deque[float] = deque(maxlen=32)
        self.changes: deque[dict[str, Any]] = deque(maxlen=RECENT_CHANGES)
        self.figures: dict[str, Any] = {}
        self._next_sample = float("-inf")

    # --- the frame loop ---------------------------------------------------------------------------

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        rois = self._rois()
        self.latest = Latest(frame, result, state, rois)
        self.frame_times.append(frame.monotonic)
        if frame.monotonic >= self._next_sample:
            self._next_sample = frame.monotonic + SAMPLE_INTERVAL_S
            names = tuple(name for name, _ in rois)
            self.history.append(Sample(frame.wall, names, tuple(float(p) for p in result.probabilities),
                                       tuple(float(result.smoothed.get(n, 0.0)) for n in names)))

    # --- the publisher side (called by the daemon's thread) ----------------------------------------

    def start(self, state: DeviceState) -> None:
        self.state = state

    def state_changed(self, state: DeviceState) -> None:
        self.state = state

    def changed(self, change: Change) -> None:
        self.changes.append({**change_summary(change), "snapshot": getattr(change, "snapshot", None)})

    def telemetry_figures(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    # --- read by the console's thread ---------------------------------------------------------------

    def fps(self) -> float | None:
        times = list(self.frame_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return round((len(times) - 1) / (times[-1] - times[0]), 2)

    def samples_since(self, wall: float) -> list[Sample]:
        return [s for s in list(self.history) if s.wall > wall]


def link_json(link: LinkStatus | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {"connected": link.connected, "last_error": link.last_error, "pending": link.pending, "durable": link.durable}
