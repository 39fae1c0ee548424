"""The conveyor simulator as a camera: a moving belt with scripted drops in flow."""

from __future__ import annotations

import time

from edge.config import SyntheticSource
from edge.simulator import ConveyorStream, Drop
from edge.sources.base import Frame, Pacer


class SyntheticCamera:
    """Streams :class:`ConveyorStream` frames; with ``realtime: false`` frames carry stream time
    (start + i/fps) as their capture time, so a long script runs fast with the same timing logic."""

    name = "synthetic"

    def __init__(self, config: SyntheticSource) -> None:
        self.config = config
        self._stream: ConveyorStream | None = None
        self._seq = 0
        self._pacer = Pacer(config.fps)
        self._t0_mono = 0.0
        self._t0_wall = 0.0

    def open(self) -> None:
        c = self.config
        drops = tuple(Drop(d.start_s, d.duration_s, None if d.lanes is None else tuple(lane - 1 for lane in d.lanes))
                      for d in c.drops)
        self._stream = ConveyorStream(c.seed, (c.width, c.height), c.speed, drops)
        self._seq = 0
        self._t0_mono, self._t0_wall = time.monotonic(), time.time()

    def stream_time(self, seq: int) -> float:
        return seq / self.config.fps

    def read(self) -> Frame | None:
        assert self._stream is not None, "open() first"
        t = self.stream_time(self._seq)
        if self.config.duration_s is not None and t >= self.config.duration_s:
            return None
        if self.config.realtime:
            self._pacer.wait()
        pixels = self._stream.frame_at(t)
        if self.config.realtime:
            mono, wall = time.monotonic(), time.time()
        else:
            mono, wall = self._t0_mono + t, self._t0_wall + t
        frame = Frame(pixels, self._seq, mono, wall)
        self._seq += 1
        return frame

    def close(self) -> None:
        self._stream = None
