"""The framing check: how many product pitches a region spans along the flow, and the warning outside the spec."""

from __future__ import annotations

from collections.abc import Callable

import jsonschema
import numpy as np
import pytest
from conftest import expected_runtime
from helpers.subscriber import TELEMETRY_VALIDATOR

from benchmarks.streams import StreamSource
from converter.holdout import HoldoutStream, Script
from edge.config import BUNDLED_MODEL, parse_config
from edge.daemon import Daemon, DaemonParts
from edge.errors import SourceError
from edge.framing import READINGS, FramingWatch, along_flow_profile, pitches_in_view
from edge.inference import Classifier, load_runtime
from edge.preprocess import WHOLE_FRAME, Box
from edge.publishing.recording import RecordingPublisher
from edge.sources.base import Frame


def rows_of_product(width: int, pitch_px: float, phase: float = 0.0, height: int = 240) -> np.ndarray:
    """A grey belt with dark round-ish products every ``pitch_px`` along x, three lanes, a light gradient across."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    frame = np.full((height, width), 150.0) + 30.0 * x / width
    radius = 0.35 * pitch_px
    for centre_y in (height / 6, height / 2, 5 * height / 6):
        along = (x - phase) % pitch_px - pitch_px / 2
        frame = np.where(along**2 + (y - centre_y) ** 2 < radius**2, 60.0, frame)
    return np.repeat(frame[:, :, None], 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("pitches", [3.2, 3.45, 5.0, 9.7, 12.5])
def test_the_number_of_pitches_in_view_is_read_from_the_profile_along_the_flow(pitches: float) -> None:
    frame = rows_of_product(320, 320 / pitches, phase=7.0)
    reading = pitches_in_view(along_flow_profile(frame, WHOLE_FRAME))
    assert reading is not None and abs(reading[0] / pitches - 1) < 0.02, reading


def test_a_flow_down_the_picture_is_read_along_the_turned_box() -> None:
    frame = np.ascontiguousarray(rows_of_product(320, 320 / 6.0, height=240).transpose(1, 0, 2))  # rows run down
    turned = pitches_in_view(along_flow_profile(frame, Box(turned=True)))
    across = pitches_in_view(along_flow_profile(frame, WHOLE_FRAME))
    assert turned is not None and abs(turned[0] - 6.0) < 0.1, turned
    assert across is None or abs(across[0] - 6.0) > 0.5


def test_a_plain_or_narrow_region_gives_no_reading() -> None:
    assert pitches_in_view(np.full(320, 120.0, np.float32)) is None
    assert pitches_in_view(np.sin(np.arange(60, dtype=np.float32)) * 40) is None  # too few pixels along the flow


def test_a_strong_half_rate_peak_marks_a_reading_that_may_be_a_harmonic() -> None:
    x = np.arange(640, dtype=np.float64) / 640
    square_rows = 40 * np.cos(2 * np.pi * 14 * x) + 32 * np.cos(2 * np.pi * 7 * x)
    cycles, ambiguous = pitches_in_view(square_rows.astype(np.float32)) or (0.0, False)
    assert abs(cycles - 14) < 0.2 and ambiguous
    watch = FramingWatch()  # most readings so: no figure (7 or 14?), and no warning of a view too wide
    for _ in range(READINGS):
        watch.see(square_rows.astype(np.float32))
    assert watch.pitches() is None and watch.outside_spec() is None
    cycles, ambiguous = pitches_in_view((40 * np.cos(2 * np.pi * 14 * x) + 20 * np.cos(2 * np.pi * 7 * x)).astype(np.float32)) or (0, True)
    assert abs(cycles - 14) < 0.2 and not ambiguous  # a weaker half-rate peak (round product has up to 0.39 of the power)
    cycles, ambiguous = pitches_in_view((40 * np.cos(2 * np.pi * 14 * x)).astype(np.float32)) or (0.0, True)
    assert abs(cycles - 14) < 0.2 and not ambiguous


@pytest.mark.parametrize("cycles", [0.5, 1.0, 1.9, 70.0, 200.0])
def test_a_repetition_outside_the_band_gives_no_reading_not_its_edge(cycles: float) -> None:
    """A slow gradient or a repetition finer than the band once read as the band's edge (1.94 pitches), and the daemon
    told the engineer to widen a view that was too wide (an adversarial review)."""
    x = np.arange(1280, dtype=np.float64) / 1280
    assert pitches_in_view((40 * np.cos(2 * np.pi * cycles * x + 0.3)).astype(np.float32)) is None


def test_a_wide_view_is_read_and_named_too_wide() -> None:
    watch = FramingWatch()
    for k in range(READINGS):
        watch.see(along_flow_profile(rows_of_product(1280, 1280 / 30.0, phase=k * 5.0), WHOLE_FRAME))
    assert watch.outside_spec() == pytest.approx(30.0, rel=0.02)


def test_the_watch_speaks_only_when_enough_readings_agree() -> None:
    watch = FramingWatch()
    for k in range(READINGS - 1):
        watch.see(along_flow_profile(rows_of_product(320, 320 / 3.3, phase=k * 5.0), WHOLE_FRAME))
    assert watch.pitches() is None  # not enough readings yet
    watch.see(along_flow_profile(rows_of_product(320, 320 / 3.3, phase=99.0), WHOLE_FRAME))
    assert watch.pitches() == pytest.approx(3.3, rel=0.02) and watch.outside_spec() == watch.pitches()
    mixed = FramingWatch()
    for k in range(READINGS):
        mixed.see(along_flow_profile(rows_of_product(320, 320 / (3.3 if k % 2 else 6.0), phase=k * 5.0), WHOLE_FRAME))
    assert mixed.pitches() is None and mixed.outside_spec() is None
    inside = FramingWatch()
    for k in range(READINGS):
        inside.see(along_flow_profile(rows_of_product(320, 320 / 6.0, phase=k * 5.0), WHOLE_FRAME))
    assert inside.pitches() == pytest.approx(6.0, rel=0.02) and inside.outside_spec() is None


@pytest.mark.parametrize(("seed", "warned"), [(202, True), (34, False)])
def test_the_daemon_warns_once_when_the_view_spans_fewer_pitches_than_the_spec(caplog: pytest.LogCaptureFixture, seed: int,
                                                                               warned: bool) -> None:
    """The second renderer's belt 202 spans 3.45 pitches (7 single missing rows alerted in a simulated hour): the log
    says so, once, with the figure and what to do; belt 34 (3.59 pitches) is inside the spec and nothing is said.
    Telemetry's view_pitches gives each figure."""
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()))
    config = parse_config({"source": {"type": "synthetic", "fps": 15.0}}, check_files=False)
    caplog.set_level("WARNING")
    stream = HoldoutStream(seed, Script(), fps=15.0, size=(320, 240))
    publisher, source = RecordingPublisher(), StreamSource(stream, 40 * 15)
    daemon = Daemon(DaemonParts(config, classifier, source, publisher))
    assert daemon.run() == 0
    hints = [r.getMessage() for r in caplog.records if "product pitches along the flow" in r.getMessage()]
    assert len(hints) == (1 if warned else 0), hints
    if warned:
        assert "ROI belt" in hints[0] and "about 3.4" in hints[0] and "(3.5 to 13;" in hints[0], hints[0]
    daemon.publish_telemetry()
    figures = publisher.snapshots[-1].figures["view_pitches"]
    jsonschema.validate(figures, TELEMETRY_VALIDATOR.schema["properties"]["view_pitches"])
    assert figures["belt"] == pytest.approx(320 / stream.pitch, rel=0.05), figures


class ChangingLanes(StreamSource):
    """The stream, and at ``at`` frames the config changes on the frame loop (as the console's lane editor does)."""

    def __init__(self, stream: HoldoutStream, frames: int, at: int, change: Callable[[], None]) -> None:
        super().__init__(stream, frames)
        self.at, self.change = at, change

    def read(self) -> Frame | None:
        if self.index == self.at:
            self.change()
        return super().read()


def test_a_lane_added_at_run_time_gets_its_own_reading_and_the_kept_one_keeps_its_own(caplog: pytest.LogCaptureFixture) -> None:
    """The lane editor adds a lane to belt 202 after 32 s: the kept ROI's warning is not said again, the new lane is read
    afresh (30 s) and warned about once; telemetry gives both (a missing watch for the new lane stopped the daemon)."""
    runtime = load_runtime(expected_runtime())
    before = parse_config({"source": {"type": "synthetic", "fps": 15.0}}, check_files=False)
    after = parse_config({"source": {"type": "synthetic", "fps": 15.0},
                          "rois": [{"name": "belt", "box": [0, 0, 1, 1]}, {"name": "lane", "box": [0, 0, 1, 0.5]}]}, check_files=False)
    caplog.set_level("WARNING")
    publisher = RecordingPublisher()
    holder: list[Daemon] = []

    def add_lane() -> None:
        daemon = holder[0]
        daemon.call_soon(lambda: daemon.reconfigure(after, Classifier.from_files(BUNDLED_MODEL, runtime, batch=2)))

    source = ChangingLanes(HoldoutStream(202, Script(), fps=15.0, size=(320, 240)), 70 * 15, 32 * 15, add_lane)
    daemon = Daemon(DaemonParts(before, Classifier.from_files(BUNDLED_MODEL, runtime), source, publisher))
    holder.append(daemon)
    assert daemon.run() == 0
    hints = [r.getMessage() for r in caplog.records if "product pitches along the flow" in r.getMessage()]
    assert [hint.split(":")[0] for hint in hints] == ["ROI belt", "ROI lane"], hints
    daemon.publish_telemetry()
    figures = publisher.snapshots[-1].figures["view_pitches"]
    assert set(figures) == {"belt", "lane"} and all(value == pytest.approx(3.45, rel=0.05) for value in figures.values()), figures


class Reaimed(StreamSource):
    """Belt 202 (3.45 pitches in view); at ``at`` frames the camera drops out once and comes back framed on belt 34
    (3.59); ``hook(index)`` runs before each read."""

    def __init__(self, frames: int, at: int, hook: Callable[[int], None]) -> None:
        super().__init__(HoldoutStream(202, Script(), fps=15.0, size=(320, 240)), frames)
        self.at, self.hook, self.dropped = at, hook, False
        self.after = HoldoutStream(34, Script(), fps=15.0, size=(320, 240))

    def read(self) -> Frame | None:
        self.hook(self.index)
        if self.index == self.at and not self.dropped:
            self.dropped = True
            raise SourceError("camera unplugged")
        if self.index >= self.at:
            self.stream = self.after
        return super().read()


def test_a_camera_reopened_is_read_afresh() -> None:
    """After a reopen the camera may be framed otherwise: the figure of the old framing is not reported (telemetry 3 s
    after the reopen has none), the new one is read from its own frames (3.59)."""
    config = parse_config({"source": {"type": "synthetic", "fps": 15.0}, "health": {"reopen_min_s": 0.01},
                          "telemetry": {"interval_s": 3600}}, check_files=False)
    publisher = RecordingPublisher()
    holder: list[Daemon] = []

    def telemetry_at(index: int) -> None:
        if index in (599, 645):
            holder[0].call_soon(holder[0].publish_telemetry)

    source = Reaimed(80 * 15, 40 * 15, telemetry_at)
    daemon = Daemon(DaemonParts(config, Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime())), source, publisher))
    holder.append(daemon)
    assert daemon.run() == 0 and source.dropped
    daemon.publish_telemetry()
    figures = [snapshot.figures["view_pitches"]["belt"] for snapshot in publisher.snapshots]
    assert len(figures) == 3 and figures[0] == pytest.approx(3.45, rel=0.03) and figures[1] is None, figures
    assert figures[2] == pytest.approx(3.59, rel=0.03), figures
