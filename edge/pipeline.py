"""One frame in, judgements out: preprocessing, inference, image health and alert levels.

Knows nothing about MQTT, storage or what is published; the daemon turns its results into
the device state and events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge.config import EdgeConfig
from edge.health import HealthRules, ImageHealth
from edge.levels import AlertLevels, LevelChange, LevelRules
from edge.preprocess import Box, quantization_table, resize_rgb
from edge.sources.base import Frame
from edge.state import Health, Level

MIN_SIDE, MAX_SIDE = 16, 8192
# Image health judges seconds-long conditions; sampling it ten times a second is plenty and keeps
# it off the per-frame budget at high frame rates. A frozen camera still repeats identical frames.
HEALTH_INTERVAL_S = 0.1


class FrameClassifier(Protocol):
    """What the pipeline needs from a model: :class:`edge.inference.Classifier`, or the shipped
    :class:`edge.fakes.FakeClassifier` in tests that need no TFLite runtime."""

    card: Any  # .input (shape, dtype, scale, zero_point) and .tflite_sha256, as in edge.modelcard.ModelCard
    runtime: Any  # .name and .version

    def classify(self, inputs: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """Alert probability per crop of a (batch, H, W, 3) input."""


@dataclass
class FrameResult:
    """What one frame produced."""

    probabilities: npt.NDArray[np.float32]
    health: Health
    health_reason: str
    judged: dict[str, Level]  # each ROI's judged flow level (unchanged while the picture is not usable)
    smoothed: dict[str, float]
    changes: list[LevelChange] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def frame_problem(pixels: object) -> str | None:
    """Why a source's frame cannot be used, or None if it can."""
    if not isinstance(pixels, np.ndarray):
        return f"not an array ({type(pixels).__name__})"
    if pixels.dtype != np.uint8:
        return f"dtype {pixels.dtype}, expected uint8"
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        return f"shape {pixels.shape}, expected HxWx3"
    if not (MIN_SIDE <= pixels.shape[0] <= MAX_SIDE and MIN_SIDE <= pixels.shape[1] <= MAX_SIDE):
        return f"size {pixels.shape[1]}x{pixels.shape[0]}, expected {MIN_SIDE}-{MAX_SIDE} pixels a side"
    return None


class Pipeline:
    """Classifies every region of interest of a frame with one interpreter invoke."""

    def __init__(self, config: EdgeConfig, classifier: FrameClassifier) -> None:
        self.rois = [(roi.name, Box(*roi.box)) for roi in config.rois]
        self.use_classifier(classifier)
        lv = config.levels
        rules = LevelRules.from_bands(lv.window_s, lv.dwell_s, lv.min_frames,
                                      (lv.warning.enter, lv.warning.exit), (lv.alert.enter, lv.alert.exit))
        self.levels = {name: AlertLevels(name, rules) for name, _ in self.rois}
        h = config.health
        self.health = ImageHealth(HealthRules(h.frozen_after_s, h.dark_level, h.blur_level, h.degraded_after_s))
        self._next_health = float("-inf")

    def use_classifier(self, classifier: FrameClassifier) -> None:
        """Judge with ``classifier`` from the next frame on (its own input quantization); levels and health carry on."""
        spec = classifier.card.input
        self.classifier = classifier
        self._table = quantization_table(spec.scale, spec.zero_point, spec.dtype)
        self._identity = bool(np.array_equal(self._table, np.arange(256, dtype=np.uint8)))
        self._batch = np.empty((len(self.rois), *spec.shape[1:]), dtype=spec.dtype)

    def forget_picture(self) -> None:
        """The camera was reopened: judge its health afresh."""
        self.health.reset()
        self._next_health = float("-inf")

    def process(self, frame: Frame) -> FrameResult:
        """Run one valid frame through the model and the level logic."""
        t0 = time.perf_counter()
        for i, (_, box) in enumerate(self.rois):
            pixels64 = resize_rgb(frame.pixels, box)
            if i == 0 and frame.monotonic >= self._next_health:
                self.health.update(pixels64, frame.monotonic)
                self._next_health = frame.monotonic + HEALTH_INTERVAL_S
            # The usual calibration makes the table the identity: skip the lookup then.
            self._batch[i] = pixels64 if self._identity else self._table[pixels64]
        t1 = time.perf_counter()
        probabilities = self.classifier.classify(self._batch).alert
        t2 = time.perf_counter()
        changes: list[LevelChange] = []
        if self.health.verdict == Health.OK:  # a dark, blurred or frozen picture says nothing about the belt
            for (name, _), probability in zip(self.rois, probabilities, strict=True):
                change = self.levels[name].update(float(probability), frame.monotonic)
                if change is not None:
                    changes.append(change)
        t3 = time.perf_counter()
        return FrameResult(
            probabilities=probabilities,
            health=self.health.verdict,
            health_reason=self.health.reason,
            judged={name: lv.level for name, lv in self.levels.items()},
            smoothed={name: lv.smoothed for name, lv in self.levels.items()},
            changes=changes,
            timings={"preprocess": t1 - t0, "inference": t2 - t1, "levels": t3 - t2},
        )
