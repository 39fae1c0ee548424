"""The shadow run: a candidate model judges live frames beside the active one, deciding nothing.

:class:`ShadowObserver` is a frame observer (edge.daemon): in the frame loop it only counts frames
and, on every Nth frame the active model judged with a usable picture, hands the frame and the active
model's output to the current :class:`ShadowRun` through a one-slot queue (a busy candidate means the
frame is skipped and counted, never waited for). The run's own thread preprocesses the ROIs for the
candidate's input, classifies them and adds the comparison to :class:`ShadowStats` (pure).

Compared per ROI: agreement of the two models' decisions (each at its own card's threshold), mean and
largest absolute difference of the alert probabilities, the unknown-scene rate of each model (when
the models report one), and both models' time per invoke. The run is over when it has compared
``min_frames`` frames over at least ``min_duration_s`` of stream time (verdict ``passed`` or
``failed`` by ``min_agreement``), or at ``max_duration_s`` without that much evidence
(``incomplete``). Memory: the candidate's one interpreter, nothing else of size.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.pipeline import FrameClassifier, FrameResult
from edge.preprocess import Box, quantize_into, resize_rgb
from edge.sources.base import Frame
from edge.state import DeviceState, Health

log = logging.getLogger(__name__)
RUNNING, PASSED, FAILED, INCOMPLETE = "running", "passed", "failed", "incomplete"
DEFAULT_UNKNOWN_THRESHOLD = 0.5
Values = Sequence[float] | npt.NDArray[np.float32]


def alert_scores(output: Any) -> npt.NDArray[np.float32]:
    """The alert probabilities of a classifier's output: a bare array today, ``Scores.alert`` once models
    also say how unknown a scene is."""
    return np.asarray(getattr(output, "alert", output), dtype=np.float32).reshape(-1)


def unknown_scores(output: Any) -> npt.NDArray[np.float32] | None:
    """The unknown-scene scores of a classifier's output, or None when the model has none."""
    unknown = getattr(output, "unknown", None)
    return None if unknown is None else np.asarray(unknown, dtype=np.float32).reshape(-1)


def card_threshold(card: Any, name: str = "threshold", default: float = 0.5) -> float:
    value = getattr(card, name, None)
    return float(value) if isinstance(value, (int, float)) else default


@dataclass(frozen=True)
class ShadowSettings:
    """``model.shadow`` from the config."""

    every_n_frames: int = 5
    min_frames: int = 500
    min_duration_s: float = 600.0
    max_duration_s: float = 86400.0
    min_agreement: float = 0.98
    auto_promote: bool = False


@dataclass
class RoiComparison:
    compared: int = 0
    agreed: int = 0
    abs_diff_sum: float = 0.0
    abs_diff_max: float = 0.0


@dataclass
class ShadowStats:
    """Running comparison of the candidate with the active model (pure; the run's lock guards it)."""

    rois: tuple[str, ...]
    frames: int = 0
    per_roi: dict[str, RoiComparison] = field(default_factory=dict)
    unknown_counts: dict[str, int] = field(default_factory=lambda: {"active": 0, "candidate": 0})
    unknown_judged: dict[str, int] = field(default_factory=lambda: {"active": 0, "candidate": 0})
    candidate_ms: list[float] = field(default_factory=list)
    active_ms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.per_roi = {roi: RoiComparison() for roi in self.rois}

    def add(self, active: Values, candidate: Values, thresholds: tuple[float, float],
            unknown: tuple[Values | None, Values | None], unknown_thresholds: tuple[float, float],
            ms: tuple[float, float]) -> None:
        """One compared frame: alert probabilities per ROI of both models, their decision thresholds,
        their unknown-scene scores (None: the model has none), and their times per invoke."""
        self.frames += 1
        for roi, a, c in zip(self.rois, active, candidate, strict=True):
            r = self.per_roi[roi]
            r.compared += 1
            r.agreed += int((a >= thresholds[0]) == (c >= thresholds[1]))
            diff = abs(float(a) - float(c))
            r.abs_diff_sum += diff
            r.abs_diff_max = max(r.abs_diff_max, diff)
        for who, scores, threshold in zip(("active", "candidate"), unknown, unknown_thresholds, strict=True):
            if scores is not None:
                self.unknown_judged[who] += len(scores)
                self.unknown_counts[who] += sum(1 for s in scores if s >= threshold)
        self.active_ms.append(ms[0])
        self.candidate_ms.append(ms[1])
        if len(self.candidate_ms) > 4096:  # percentiles of the recent past; bounded memory for a day-long run
            del self.candidate_ms[:2048], self.active_ms[:2048]

    @property
    def agreement(self) -> float | None:
        compared = sum(r.compared for r in self.per_roi.values())
        return None if compared == 0 else sum(r.agreed for r in self.per_roi.values()) / compared

    def summary(self) -> dict[str, Any]:
        def rate(who: str) -> float | None:
            judged = self.unknown_judged[who]
            return None if judged == 0 else round(self.unknown_counts[who] / judged, 4)

        def p50(values: list[float]) -> float | None:
            return None if not values else round(float(np.percentile(values, 50)), 3)

        agreement = self.agreement
        return {
            "frames": self.frames,
            "agreement": None if agreement is None else round(agreement, 4),
            "rois": {roi: {"agreement": None if r.compared == 0 else round(r.agreed / r.compared, 4),
                           "mean_abs_diff": None if r.compared == 0 else round(r.abs_diff_sum / r.compared, 4),
                           "max_abs_diff": round(r.abs_diff_max, 4)} for roi, r in self.per_roi.items()},
            "unknown_rate": {"active": rate("active"), "candidate": rate("candidate")},
            "ms_per_invoke": {"active_p50": p50(self.active_ms), "candidate_p50": p50(self.candidate_ms)},
        }


def verdict(frames: int, elapsed_s: float, agreement: float | None, settings: ShadowSettings) -> str:
    """``running`` until enough evidence (``min_frames`` over ``min_duration_s``), then ``passed`` or
    ``failed`` by ``min_agreement``; ``incomplete`` when ``max_duration_s`` passes first."""
    if frames >= settings.min_frames and elapsed_s >= settings.min_duration_s:
        return PASSED if agreement is not None and agreement >= settings.min_agreement else FAILED
    if elapsed_s >= settings.max_duration_s:
        return INCOMPLETE
    return RUNNING


@dataclass(frozen=True)
class _Sample:
    pixels: npt.NDArray[np.uint8]
    active: npt.NDArray[np.float32]
    active_unknown: npt.NDArray[np.float32] | None
    active_threshold: float
    active_unknown_threshold: float
    active_ms: float


class ShadowRun:
    """One candidate's shadow run, on its own thread. ``offer`` is called in the frame loop; the rest anywhere."""

    def __init__(self, sha256: str, classifier: FrameClassifier, rois: Sequence[tuple[str, Box]], settings: ShadowSettings,
                 clock: Any = time.monotonic) -> None:
        self.sha256 = sha256
        self.classifier = classifier
        self.settings = settings
        self._rois = list(rois)
        spec = classifier.card.input
        self._spec = (float(spec.scale), int(spec.zero_point), str(spec.dtype))
        self._batch = np.empty((len(self._rois), *spec.shape[1:]), dtype=spec.dtype)
        self._thresholds = (card_threshold(classifier.card), card_threshold(classifier.card, "unknown_threshold", DEFAULT_UNKNOWN_THRESHOLD))
        self._queue: queue.Queue[_Sample | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self.stats = ShadowStats(tuple(name for name, _ in self._rois))
        self.skipped = 0  # samples dropped because the candidate was still busy with the previous one
        self.errors = 0
        self.reported = False  # the manager published the verdict
        self._seen = 0
        self._first_seen: float | None = None
        self._last_seen: float | None = None
        self._state = RUNNING
        self._thread = threading.Thread(target=self._work, name=f"shadow-{sha256[:8]}", daemon=True)
        self._thread.start()

    # --- the frame loop ------------------------------------------------------------------------

    def offer(self, frame: Frame, result: FrameResult, active_card: Any) -> None:
        """Every frame: count it; every Nth judged one goes to the candidate if it is free. Never blocks."""
        if self._state != RUNNING:
            return
        self._seen += 1
        if self._first_seen is None:
            self._first_seen = frame.monotonic
        self._last_seen = frame.monotonic
        if self._seen % self.settings.every_n_frames or result.health != Health.OK:
            return
        output = result.probabilities
        sample = _Sample(frame.pixels, alert_scores(output).copy(), unknown_scores(output), card_threshold(active_card),
                         card_threshold(active_card, "unknown_threshold", DEFAULT_UNKNOWN_THRESHOLD),
                         result.timings.get("inference", 0.0) * 1000.0)
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            self.skipped += 1

    # --- the run's thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            sample = self._queue.get()
            if sample is None:
                return
            try:
                self._compare(sample)
            except Exception:
                self.errors += 1
                log.exception("shadow run of %s: comparing a frame failed", self.sha256[:12])

    def _compare(self, sample: _Sample) -> None:
        scale, zero_point, dtype = self._spec
        for i, (_, box) in enumerate(self._rois):
            quantize_into(self._batch[i], resize_rgb(sample.pixels, box), scale, zero_point, dtype)
        start = time.perf_counter()
        output = self.classifier.classify(self._batch)
        ms = (time.perf_counter() - start) * 1000.0
        candidate = alert_scores(output)
        if len(candidate) != len(sample.active):  # the ROIs changed under the run: nothing to compare
            self.errors += 1
            return
        with self._lock:
            self.stats.add(sample.active, candidate, (sample.active_threshold, self._thresholds[0]),
                           (sample.active_unknown, unknown_scores(output)), (sample.active_unknown_threshold, self._thresholds[1]),
                           (sample.active_ms, ms))

    # --- anyone ----------------------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        if self._first_seen is None or self._last_seen is None:
            return 0.0
        return self._last_seen - self._first_seen

    def verdict(self) -> str:
        """The run's state; once it is not ``running`` it stays (the candidate stops being fed frames)."""
        if self._state == RUNNING:
            with self._lock:
                self._state = verdict(self.stats.frames, self.elapsed_s, self.stats.agreement, self.settings)
        return self._state

    def status(self) -> dict[str, Any]:
        with self._lock:
            summary = self.stats.summary()
        return {"state": self._state, "elapsed_s": round(self.elapsed_s, 1), "skipped": self.skipped, **summary}

    def stop(self) -> None:
        """End the thread (the current comparison finishes first); the interpreter goes with the last reference."""
        if self._state == RUNNING:
            self._state = "stopped"
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(10)


class ShadowObserver:
    """The frame observer that feeds whichever shadow run is current (None: no candidate)."""

    def __init__(self, active_card: Callable[[], Any] = lambda: None) -> None:
        self.run: ShadowRun | None = None
        self.active_card = active_card  # the card of the model the frame loop runs (read in the frame loop)

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        run = self.run  # one read: the manager may replace it between frames
        if run is not None:
            run.offer(frame, result, self.active_card())
