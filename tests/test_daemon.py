"""The frame loop with the shipped fakes (no TFLite runtime, no broker): observers and calls from other threads."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.fakes import FakeClassifier
from edge.pipeline import FrameResult
from edge.publishing.recording import RecordingPublisher
from edge.sources.base import Frame
from edge.state import DeviceState, Level


class Frames:
    """``count`` noisy frames, then the end of the stream (or forever with count=None)."""

    name = "frames"

    def __init__(self, count: int | None) -> None:
        self.count = count
        self.seq = 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.count is not None and self.seq >= self.count:
            return None
        self.seq += 1
        time.sleep(0.002)
        pixels = np.random.default_rng(self.seq).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        return Frame(pixels, self.seq, time.monotonic(), time.time())

    def close(self) -> None:
        pass


class Watcher:
    def __init__(self) -> None:
        self.seen: list[tuple[int, float, Level]] = []

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        self.seen.append((frame.seq, float(result.probabilities[0]), state.level("belt")))


def test_observers_see_every_judged_frame_with_its_result_and_the_state_after_it() -> None:
    """A flow that drops: the observer sees each frame, the model's output and the published level."""
    watcher = Watcher()
    classifier = FakeClassifier.scripted(lambda n: 0.95 if 20 <= n < 40 else 0.05)
    publisher = RecordingPublisher()
    config = parse_config({"levels": {"window_s": 0.005, "dwell_s": 0.0, "min_frames": 2}}, check_files=False)
    daemon = Daemon(DaemonParts(config, classifier, Frames(60), publisher, observers=[watcher]))
    assert daemon.run() == 0
    assert [seq for seq, _, _ in watcher.seen] == list(range(1, 61))
    assert watcher.seen[25][1] == np.float32(0.95) and watcher.seen[5][1] == np.float32(0.05)
    assert Level.ALERT in {level for _, _, level in watcher.seen}
    assert publisher.transitions("belt") == [("ok", "alert"), ("alert", "ok")]


def test_call_soon_runs_in_the_frame_loop_and_is_cancelled_at_shutdown() -> None:
    """Other threads change what the daemon owns through call_soon; leftovers are cancelled when it stops."""
    daemon = Daemon(DaemonParts(parse_config({}, check_files=False), FakeClassifier.constant(0.1), Frames(None),
                                RecordingPublisher()))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        result = daemon.call_soon(lambda: (threading.current_thread() is thread, daemon.state.level("belt")))
        assert result.result(timeout=10) == (True, Level.OK)
        failing = daemon.call_soon(lambda: 1 / 0)
        assert isinstance(failing.exception(timeout=10), ZeroDivisionError)
    finally:
        daemon.stop.set()
        thread.join(10)
    late = daemon.call_soon(lambda: None)
    daemon._cancel_calls()
    assert late.cancelled()
