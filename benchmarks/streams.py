"""The real daemon over a stream from the second renderer: what the detection benchmark and its tests share.

:class:`StreamSource` is a :class:`edge.sources.base.FrameSource` over a
:class:`converter.holdout.HoldoutStream`, stamped with **stream time** (frame ``i`` at ``i / fps``), so the
daemon's timing (smoothing windows, dwell, scene debouncing, belt motion) runs exactly as at that frame rate
while the frames come as fast as they can be rendered. :func:`run_daemon` runs an
:class:`edge.daemon.Daemon` - the device's own pipeline, scene judges, belt motion, levels and state -
with a :class:`edge.publishing.recording.RecordingPublisher` in place of MQTT, and returns what it
published and what it said on every frame.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from edge.config import EdgeConfig
from edge.daemon import Daemon, DaemonParts
from edge.errors import EdgeError
from edge.inference import Classifier, load_runtime
from edge.pipeline import FrameClassifier, FrameResult
from edge.publishing.recording import RecordingPublisher
from edge.sources.base import Frame
from edge.state import DeviceState


class FrameStream(Protocol):
    """What the source reads: frame ``i`` of a stream at ``fps`` (a :class:`converter.holdout.HoldoutStream`, or
    the training simulator's stream through ``benchmarks.gap_belts.SimulatorFrames``)."""

    fps: float

    def frame(self, i: int) -> npt.NDArray[np.uint8]: ...


T = TypeVar("T")
EPOCH = 1_800_000_000.0  # the wall clock of frame 0 (any fixed value: nothing depends on today's date)


class StreamSource:
    """``frames`` frames of ``stream``, then the end of the stream."""

    name = "holdout-stream"

    def __init__(self, stream: FrameStream, frames: int) -> None:
        self.stream, self.frames, self.index = stream, frames, 0
        self.render_s = 0.0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.index >= self.frames:
            return None
        started = time.perf_counter()
        pixels = self.stream.frame(self.index)
        self.render_s += time.perf_counter() - started
        t = self.index / self.stream.fps
        frame = Frame(pixels, self.index + 1, t, EPOCH + t)
        self.index += 1
        return frame

    def close(self) -> None:
        pass


@dataclass
class FrameLog:
    """What the device said on every frame: ``(stream time, state of the first ROI, belt state)``."""

    seen: list[tuple[float, str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"inference": 0.0, "scene": 0.0, "motion": 0.0})

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        self.seen.append((frame.monotonic, str(state.levels[0][1]), str(state.belt)))
        for stage in self.seconds:
            self.seconds[stage] += result.timings.get(stage, 0.0)


def run_daemon(config: EdgeConfig, classifier: FrameClassifier, stream: FrameStream,
               frames: int) -> tuple[RecordingPublisher, FrameLog, StreamSource]:
    """Run the daemon over ``frames`` frames of ``stream``: its events, its per-frame view, and the source."""
    publisher, log, source = RecordingPublisher(), FrameLog(), StreamSource(stream, frames)
    clock = iter(range(10**9))
    daemon = Daemon(DaemonParts(config, classifier, source, publisher, observers=[log],
                                wall_clock=lambda: EPOCH + next(clock) * 1e-6, clock_synced=lambda: True))
    code = daemon.run()
    if code != 0:
        raise RuntimeError(f"the daemon ended with exit code {code}")
    return publisher, log, source


def model_error(program: str, model: Path) -> bool:
    """Check the model and its card before any worker starts (a worker's error would end in a traceback): print one
    line naming the file and return True when it cannot be used."""
    try:
        Classifier.from_files(model, load_runtime("auto"))
    except EdgeError as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return True
    return False


def run_belts(run: Callable[[T], dict[str, Any]], tasks: list[T], workers: int) -> list[dict[str, Any]]:
    """``run`` over every task, in ``workers`` forked processes (each belt renders and judges on its own)."""
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return pool.map(run, tasks, chunksize=1)
    return [run(task) for task in tasks]
