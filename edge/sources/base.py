"""The frame type and the source protocol every camera backend implements."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image (HxWx3 uint8 RGB) with its capture times and sequence number."""

    pixels: npt.NDArray[np.uint8]
    seq: int
    monotonic: float
    wall: float


class FrameSource(Protocol):
    """What the daemon needs from a camera."""

    name: str

    def open(self) -> None:
        """Acquire the device or file; raise SourceError if it cannot be opened."""

    def read(self) -> Frame | None:
        """Next frame, ``None`` at the end of a finite stream; raise SourceError on failure or timeout."""

    def close(self) -> None:
        """Release the device; safe to call twice."""


class Pacer:
    """Releases frames at a fixed rate against the monotonic clock (for file and synthetic sources)."""

    def __init__(self, fps: float, stop: threading.Event | None = None) -> None:
        self.interval = 1.0 / fps
        self._next = 0.0
        self._stop = stop or threading.Event()

    def wait(self) -> None:
        now = time.monotonic()
        if self._next == 0.0 or now - self._next > 1.0:  # first frame, or we fell far behind: resync
            self._next = now
        delay = self._next - now
        if delay > 0:
            self._stop.wait(delay)
        self._next += self.interval
