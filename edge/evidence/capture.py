"""Capture mode: frames of this line for its own dataset, pseudo-labelled by the model that runs.

While on (``capture.enabled``, the console's toggle or ``edge-daemon capture``) a frame is kept
every ``every_s`` seconds, plus frames the model is unsure about (a probability inside
``uncertain``) or cannot judge (camera health not ok, or a ROI's level unknown), those at most one
per ``min_interval_s``. Each record holds the whole frame and one crop per ROI (at least
``min_crop_px`` on its shorter side, see :func:`edge.evidence.images.training_crop`), with the
model's probability and label per ROI; the operator's labels are added later (``dataset.py``).

Off, it does nothing at all: one attribute test per frame.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from edge.config import Capture as CaptureSettings
from edge.evidence.images import encode_jpeg, training_crop
from edge.evidence.store import Records, new_record_id
from edge.messages import iso_utc
from edge.pipeline import FrameResult
from edge.preprocess import Box
from edge.sources.base import Frame
from edge.state import DeviceState, Health, Level

log = logging.getLogger(__name__)
ACCEPTABLE, ALERT, UNKNOWN = "acceptable", "alert", "unknown"
MAX_BACKLOG = 8  # frames waiting for the worker; a slow card drops captures, never fills the memory


def crop_file(roi: str) -> str:
    """The file of a ROI's crop in a capture record."""
    return f"roi-{roi}.jpg"


@dataclass(frozen=True)
class _Item:
    frame: Frame
    reason: str
    rois: tuple[tuple[str, Box], ...]
    probabilities: tuple[float, ...]
    smoothed: dict[str, float]
    levels: dict[str, Level]
    health: Health


def model_label(probability: float, threshold: float, level: Level, health: Health) -> str:
    """What the running model says about one crop: its class, or unknown when the scene cannot be judged."""
    if health != Health.OK or level == Level.UNKNOWN:
        return UNKNOWN
    return ALERT if probability >= threshold else ACCEPTABLE


class Capture:
    """Frame observer that keeps frames for a dataset while capture mode is on."""

    def __init__(self, settings: CaptureSettings, records: Records, rois: Callable[[], list[tuple[str, Box]]],
                 threshold: float, model_sha256: str) -> None:
        self.settings = settings
        self.records = records
        self._rois = rois
        self.threshold = threshold
        self.model_sha256 = model_sha256
        self.every_s = settings.every_s
        self.enabled = settings.enabled
        self._next_periodic = float("-inf")
        self._next_extra = float("-inf")
        self.taken = 0
        self.queued = 0
        self.failed = 0
        self._work: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def switch(self, on: bool, every_s: float | None = None) -> None:
        """Turn capture mode on or off (any thread: a plain attribute the frame loop reads)."""
        if every_s is not None:
            self.every_s = every_s
        self._next_periodic = float("-inf")
        self.enabled = on
        log.info("capture mode %s (a frame every %.0f s plus uncertain and unknown scenes)", "on" if on else "off", self.every_s)

    # --- the frame loop ---------------------------------------------------------------------------

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        if not self.enabled:
            return
        now = frame.monotonic
        reason = None
        if now >= self._next_periodic:
            reason = "periodic"
        elif now >= self._next_extra:
            low, high = self.settings.uncertain
            if result.health != Health.OK or any(level == Level.UNKNOWN for _, level in state.levels):
                reason = UNKNOWN
            elif any(low <= float(p) <= high for p in result.probabilities):
                reason = "uncertain"
        if reason is None or self.queued - self.taken - self.failed >= MAX_BACKLOG:
            return
        if reason == "periodic":
            self._next_periodic = now + self.every_s
        self._next_extra = now + self.settings.min_interval_s
        rois = tuple(self._rois())
        self.queued += 1
        self._work.put(_Item(frame, reason, rois, tuple(float(p) for p in result.probabilities), dict(result.smoothed),
                             dict(state.levels), result.health))

    # --- the worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.records.scan()
        except OSError as exc:
            log.warning("capture: cannot read %s: %s", self.records.root, exc)
        while True:
            item = self._work.get()
            if item is None:
                return
            try:
                self._write(item)
            except Exception as exc:  # a full or read-only disk must never stop the daemon
                self.failed += 1
                log.warning("capture: could not save a frame: %s", exc)

    def _write(self, item: _Item) -> None:
        record = new_record_id(item.frame.wall)
        s = self.settings
        files = {"frame.jpg": encode_jpeg(item.frame.pixels, s.jpeg_quality)}
        rois = []
        for (name, box), probability in zip(item.rois, item.probabilities, strict=True):
            crop = training_crop(item.frame.pixels, box, s.min_crop_px)
            files[crop_file(name)] = encode_jpeg(crop, s.jpeg_quality)
            level = item.levels.get(name, Level.UNKNOWN)
            rois.append({"name": name, "box": [box.x, box.y, box.width, box.height], "turned": box.turned,
                         "probability": round(probability, 4),
                         "smoothed": round(item.smoothed.get(name, probability), 4), "level": str(level),
                         "model_label": model_label(probability, self.threshold, level, item.health), "label": None,
                         "crop": [int(crop.shape[1]), int(crop.shape[0])]})
        meta = {"id": record, "time": iso_utc(item.frame.wall), "frame_seq": item.frame.seq, "reason": item.reason,
                "health": str(item.health), "model_sha256": self.model_sha256, "threshold": self.threshold,
                "width": int(item.frame.pixels.shape[1]), "height": int(item.frame.pixels.shape[0]), "rois": rois}
        self.records.add(record, files, meta)
        self.taken += 1

    def close(self) -> None:
        """Write what is queued, then stop the worker."""
        self._work.put(None)
        self._thread.join(10.0)
