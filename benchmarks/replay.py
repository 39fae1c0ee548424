"""A replay camera of pre-decoded frames: capture costs nothing, so the daemon's own cost shows."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from edge.sources.base import Frame, Pacer


class ReplayCamera:
    """Cycles through ``frames`` (HxWx3 uint8) ``count`` times in total; paced at ``fps`` if given."""

    name = "replay"

    def __init__(self, frames: list[npt.NDArray[np.uint8]], count: int, fps: float | None = None,
                 pattern: list[int] | None = None) -> None:
        self.frames = frames
        self.count = count
        self.pacer = Pacer(fps) if fps else None
        self.pattern = pattern or list(range(len(frames)))
        self.seq = 0
        self.captured: dict[int, float] = {}

    def open(self) -> None:
        self.seq = 0

    def read(self) -> Frame | None:
        if self.seq >= self.count:
            return None
        if self.pacer is not None:
            self.pacer.wait()
        pixels = self.frames[self.pattern[self.seq % len(self.pattern)]]
        now = time.monotonic()
        self.captured[self.seq] = now
        frame = Frame(pixels, self.seq, now, time.time())
        self.seq += 1
        return frame

    def close(self) -> None:
        pass
