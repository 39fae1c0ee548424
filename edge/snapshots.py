"""Snapshots: a small JPEG of the latest judged frame (or of one ROI), on request.

:class:`SnapshotTaker` is a frame observer: in the frame loop it only keeps a reference to the
latest frame (sources hand out a new array per frame, so nothing is copied); the JPEG is encoded
on the taker's own thread when someone asks (the ``snapshot`` command, a Sparkplug DCMD), and
handed to the sinks (the plain publisher sends it on ``<prefix>/snapshot/<id>``; the Sparkplug
publisher updates the ROI's ``Snapshot/Reference``). Pillow encodes (libjpeg).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.sources.base import Frame

log = logging.getLogger(__name__)
MAX_SIDE = 640  # px: enough to see the belt, small enough for an MQTT message
MAX_BYTES = 60_000  # under the 64 KiB packet limit the docs recommend for the broker
MAX_WAITING = 4  # requests queued for encoding before new ones are refused


class SnapshotRefused(Exception):
    """No snapshot can be taken now; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    """One encoded snapshot."""

    snapshot_id: str
    jpeg: bytes
    width: int
    height: int
    roi: str | None
    frame_seq: int
    frame_wall: float


def crop(pixels: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> npt.NDArray[np.uint8]:
    """The pixels inside a ROI box (fractions x, y, width, height); at least one pixel."""
    height, width = pixels.shape[:2]
    x, y, w, h = box
    left, top = min(int(x * width), width - 1), min(int(y * height), height - 1)
    right = max(left + 1, min(width, math.ceil((x + w) * width)))
    bottom = max(top + 1, min(height, math.ceil((y + h) * height)))
    return pixels[top:bottom, left:right]


def encode_jpeg(pixels: npt.NDArray[np.uint8], max_side: int = MAX_SIDE, max_bytes: int = MAX_BYTES) -> tuple[bytes, int, int]:
    """JPEG of an RGB image, scaled down to ``max_side`` and re-encoded at lower quality until it fits ``max_bytes``."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    image.thumbnail((max_side, max_side))
    for quality in (85, 70, 55, 40, 25):
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
        if out.tell() <= max_bytes:
            break
        if quality == 25:  # still too big: halve the size
            image.thumbnail((image.width // 2 or 1, image.height // 2 or 1))
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=quality)
    return out.getvalue(), image.width, image.height


def snapshot_id(frame_wall: float, frame_seq: int, roi: str | None) -> str:
    stamp = dt.datetime.fromtimestamp(frame_wall, dt.UTC).strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z"
    return f"{stamp}-{frame_seq}-{roi or 'frame'}"


class SnapshotTaker:
    """Implements :class:`edge.daemon.FrameObserver`; :meth:`take` returns a future snapshot."""

    def __init__(self, rois: Mapping[str, tuple[float, float, float, float]]) -> None:
        self.rois = dict(rois)
        self._latest: Frame | None = None
        self._sinks: list[Callable[[Snapshot], Any]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot")
        self._waiting = 0
        self._lock = threading.Lock()
        self.taken = 0

    def add_sink(self, sink: Callable[[Snapshot], Any]) -> None:
        """``sink(snapshot)`` runs on the taker's thread after each encoding (must not raise)."""
        self._sinks.append(sink)

    def on_frame(self, frame: Frame, result: object, state: object) -> None:
        self._latest = frame

    def take(self, roi: str | None = None) -> Future[Snapshot]:
        """Encode the latest frame (cropped to ``roi``) off the frame loop; raises :class:`SnapshotRefused`."""
        if roi is not None and roi not in self.rois:
            raise SnapshotRefused(f"unknown roi {roi!r}; rois: {', '.join(self.rois)}")
        frame = self._latest
        if frame is None:
            raise SnapshotRefused("no frame yet: the camera has not delivered a judged frame")
        with self._lock:
            if self._waiting >= MAX_WAITING:
                raise SnapshotRefused(f"busy: {MAX_WAITING} snapshots are being encoded")
            self._waiting += 1
        return self._executor.submit(self._encode, frame, roi)

    def _encode(self, frame: Frame, roi: str | None) -> Snapshot:
        try:
            pixels = frame.pixels if roi is None else crop(frame.pixels, self.rois[roi])
            jpeg, width, height = encode_jpeg(pixels)
            snapshot = Snapshot(snapshot_id(frame.wall, frame.seq, roi), jpeg, width, height, roi, frame.seq, frame.wall)
            self.taken += 1
            for sink in self._sinks:
                try:
                    sink(snapshot)
                except Exception:
                    log.exception("a snapshot sink failed")
            return snapshot
        finally:
            with self._lock:
                self._waiting -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
