"""The shadow run's arithmetic and its hand-off: exact agreement, differences and unknown-scene rates, the verdict,
and a frame loop that never waits for a busy candidate."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from helpers.daemon import wait_until

from edge.fakes import FakeCard, FakeClassifier
from edge.modelstore.shadow import FAILED, INCOMPLETE, PASSED, RUNNING, ShadowObserver, ShadowRun, ShadowSettings, ShadowStats, verdict
from edge.pipeline import FrameResult
from edge.preprocess import Box
from edge.sources.base import Frame
from edge.state import DeviceState, Health

ROIS = [("left", Box(0.0, 0.0, 0.5, 1.0)), ("right", Box(0.5, 0.0, 0.5, 1.0))]


def test_agreement_differences_and_unknown_rates_are_counted_exactly() -> None:
    """Two ROIs, three frames: one disagreement in six decisions, mean and largest |difference| per ROI, each model's
    unknown rate over the crops it judged, and None where a model gives no unknown score."""
    stats = ShadowStats(("left", "right"))
    stats.add([0.1, 0.9], [0.2, 0.8], (0.5, 0.5), ([0.0, 0.0], [0.9, 0.1]), (0.5, 0.5), (1.0, 2.0))
    stats.add([0.4, 0.6], [0.6, 0.7], (0.5, 0.5), ([0.0, 0.0], [0.1, 0.1]), (0.5, 0.5), (1.0, 4.0))
    stats.add([0.0, 1.0], [0.0, 1.0], (0.5, 0.5), ([0.0, 0.7], [0.8, 0.9]), (0.5, 0.5), (3.0, 3.0))
    summary = stats.summary()
    assert summary["frames"] == 3 and summary["agreement"] == round(5 / 6, 4)
    assert summary["rois"]["left"] == {"agreement": round(2 / 3, 4), "mean_abs_diff": 0.1, "max_abs_diff": 0.2}
    assert summary["rois"]["right"] == {"agreement": 1.0, "mean_abs_diff": 0.0667, "max_abs_diff": 0.1}
    assert summary["unknown_rate"] == {"active": round(1 / 6, 4), "candidate": 0.5}
    assert summary["ms_per_invoke"] == {"active_p50": 1.0, "candidate_p50": 3.0}
    alone = ShadowStats(("belt",))
    alone.add([0.3], [0.3], (0.5, 0.5), (None, None), (0.5, 0.5), (1.0, 1.0))
    assert alone.summary()["unknown_rate"] == {"active": None, "candidate": None}


@pytest.mark.parametrize(("frames", "elapsed", "agreement", "expected"), [
    (99, 1000.0, 1.0, RUNNING),      # not enough frames yet
    (100, 59.0, 1.0, RUNNING),       # not long enough yet
    (100, 60.0, 0.95, PASSED),       # both reached, agreement at the floor
    (100, 60.0, 0.9499, FAILED),
    (10, 3600.0, 1.0, INCOMPLETE),   # the longest run ended without enough frames
])
def test_the_verdict_needs_frames_and_time_then_agreement(frames: int, elapsed: float, agreement: float, expected: str) -> None:
    """min_frames over min_duration_s, judged by min_agreement; incomplete at max_duration_s."""
    settings = ShadowSettings(min_frames=100, min_duration_s=60.0, max_duration_s=3600.0, min_agreement=0.95)
    assert verdict(frames, elapsed, agreement, settings) == expected


@dataclass
class Scores:
    """What classify returns once models also score unknown scenes (issue 9): the shadow run reads both forms."""

    alert: npt.NDArray[np.float32]
    unknown: npt.NDArray[np.float32]


class GatedClassifier:
    """A candidate that waits for the test before each answer, to be slower than any frame loop."""

    def __init__(self, alert: float, unknown: float) -> None:
        self.card = FakeCard()
        self.runtime = FakeClassifier.constant(0.0).runtime
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.answer = (alert, unknown)

    def classify(self, inputs: npt.NDArray[np.generic]) -> Any:
        self.entered.set()
        assert self.gate.wait(30)
        self.calls += 1
        n = len(inputs)
        return Scores(np.full(n, self.answer[0], np.float32), np.full(n, self.answer[1], np.float32))


def frame_and_result(seq: int, active: Any, health: Health = Health.OK) -> tuple[Frame, FrameResult]:
    pixels = np.full((48, 64, 3), seq % 256, np.uint8)
    return Frame(pixels, seq, float(seq) / 10.0, 0.0), FrameResult(active, health, "", {}, {}, timings={"inference": 0.002})


def test_a_busy_candidate_never_holds_up_the_frame_loop_and_skipped_frames_are_counted() -> None:
    """While the candidate is stuck on one frame, 60 more are offered: every offer returns, the samples that found it
    busy are counted as skipped, frames with a bad picture are not sampled, and once it is free the comparison runs
    with the Scores form of both outputs (unknown rates included)."""
    candidate = GatedClassifier(alert=0.9, unknown=0.8)
    run = ShadowRun("c" * 64, candidate, ROIS, ShadowSettings(every_n_frames=2, min_frames=1000))
    observer = ShadowObserver(lambda: FakeCard())
    observer.run = run
    active = Scores(np.array([0.1, 0.7], np.float32), np.array([0.0, 0.0], np.float32))
    state = DeviceState.starting(["left", "right"], {})
    for seq in range(1, 63):
        observer.on_frame(*frame_and_result(seq, active, Health.DEGRADED if seq in (40, 42) else Health.OK), state)
        if seq == 2:
            assert candidate.entered.wait(10)  # the first sample is in the candidate's hands
    sampled = 31 - 2  # every 2nd of 62 frames, less the two with a degraded picture
    assert run.skipped == sampled - 2  # one taken by the worker, one waiting in the slot, the rest skipped
    candidate.gate.set()
    wait_until(lambda: run.status()["frames"] == 2, 10, "the two queued comparisons")
    status = run.status()
    assert status["agreement"] == 0.5 and status["rois"]["left"]["agreement"] == 0.0 and status["rois"]["right"]["agreement"] == 1.0
    assert status["unknown_rate"] == {"active": 0.0, "candidate": 1.0} and status["state"] == RUNNING
    run.stop()
    assert run.status()["state"] == "stopped"
