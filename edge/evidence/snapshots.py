"""EvidenceRecorder: the frames before and after every level or health change, kept as JPEG.

The daemon asks :meth:`EvidenceRecorder.snapshot_for` when it reports a change (in the frame loop);
the answer, a record id, goes into the event, so a subscriber can fetch the pictures from the
console (``/api/snapshots/<id>.jpg``). As a frame observer it keeps the last ``frames_before``
frames (one per ``spacing_s``: references, no copies), takes the frame of the change as the key
frame and ``frames_after`` more. Each frame goes to the worker thread the moment it belongs to a
record; the worker encodes it at once (so a record in progress holds kilobytes of JPEG, not
megabytes of pixels) and writes the record when its last frame is in. The frame loop only moves
references.

At most ``max_per_hour`` records are made (a flapping level must not wear the SD card); beyond
that a change carries no snapshot and one summary line per hour is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.config import Evidence
from edge.events import AlarmChanged, BeltChanged, Change, HealthChanged, LevelChanged, ModelChanged
from edge.evidence.images import encode_jpeg, shrink
from edge.evidence.store import Records, new_record_id
from edge.messages import iso_utc
from edge.pipeline import FrameResult
from edge.sources.base import Frame
from edge.state import DeviceState, Health

log = logging.getLogger(__name__)
# Frame times are floats (start + seq / fps): a frame exactly one spacing later may compare a hair below it.
TIME_SLACK_S = 1e-3
HOUR_S = 3600.0
Pictured = LevelChanged | HealthChanged


@dataclass
class _Collecting:
    """A record whose key frame or later frames are still to come (frame-loop side)."""

    record: str
    change: Pictured
    frames: list[tuple[int, float]]  # (seq, monotonic) of each frame handed over, in order
    key: int | None = None  # index of the key frame among them
    next_after: float = 0.0


@dataclass(frozen=True)
class _Encode:
    record: str
    index: int
    frame: Frame
    key: bool


@dataclass(frozen=True)
class _Finish:
    record: str
    change: Pictured
    frames: list[tuple[int, float]]
    key: int


@dataclass
class _Encoded:
    files: dict[str, bytes] = field(default_factory=dict)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    small: bytes = b""  # the key frame, shrunk, for <prefix>/snapshot


@dataclass(frozen=True)
class SnapshotReady:
    """A record was written: its id, the change it shows and a small JPEG of the key frame."""

    record: str
    change: Pictured
    jpeg: bytes


def change_summary(change: Change) -> dict[str, object]:
    """What a record says about its change (also what the console lists)."""
    common: dict[str, object] = {"time": iso_utc(change.wall), "wall": change.wall, "reason": change.reason,
                                 "model_sha256": change.model_sha256}
    if isinstance(change, AlarmChanged):
        return {"type": "alarm", "roi": change.roi, "alarm": str(change.alarm.state), "previous": str(change.previous),
                "level": str(change.level), "acked_by": change.alarm.acked_by, **common}
    if isinstance(change, BeltChanged):
        return {"type": "belt", "belt": str(change.belt), "previous": str(change.previous), "speed_px_s": change.speed_px_s,
                "frame_seq": change.frame_seq, **common}
    if isinstance(change, ModelChanged):
        return {"type": "model", "action": change.action, "model": change.model, "previous_model": change.previous_model,
                "by": change.by, **common}
    common["frame_seq"] = change.frame_seq
    if isinstance(change, LevelChanged):
        return {"type": "level", "roi": change.roi, "level": str(change.level), "previous": str(change.previous),
                "probability": round(float(change.probability), 4), **common}
    return {"type": "health", "health": str(change.health), "previous": str(change.previous), **common}


class EvidenceRecorder:
    """Frame observer and snapshot source for the daemon (see the module docstring)."""

    def __init__(self, settings: Evidence, records: Records, on_snapshot: Callable[[SnapshotReady], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.records = records
        self.on_snapshot = on_snapshot
        self._clock = clock
        self._ring: deque[Frame] = deque(maxlen=settings.frames_before) if settings.frames_before else deque(maxlen=1)
        self._next_ring = float("-inf")
        self._collecting: list[_Collecting] = []
        self._made: deque[float] = deque()  # when each record of the last hour was made
        self.skipped = 0
        self._skipped_logged_at = float("-inf")
        self.written = 0
        self._work: queue.SimpleQueue[_Encode | _Finish | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self._thread.start()

    # --- the frame loop ---------------------------------------------------------------------------

    def snapshot_for(self, change: Pictured) -> str | None:
        """A record id for ``change`` (its frames follow), or None when the hourly cap is reached."""
        now = self._clock()
        while self._made and now - self._made[0] >= HOUR_S:
            self._made.popleft()
        if len(self._made) >= self.settings.max_per_hour:
            self.skipped += 1
            if now - self._skipped_logged_at >= HOUR_S:
                self._skipped_logged_at = now
                log.warning("evidence: more than %d changes this hour; further changes carry no snapshot "
                            "(evidence.max_per_hour; %d skipped so far)", self.settings.max_per_hour, self.skipped)
            return None
        self._made.append(now)
        collecting = _Collecting(new_record_id(change.wall), change, [])
        before = list(self._ring)[-self.settings.frames_before:] if self.settings.frames_before else []
        # No frame comes while the camera is down: then the last one it gave is the key frame.
        fault = isinstance(change, HealthChanged) and change.health == Health.CAMERA_FAULT
        for i, frame in enumerate(before):
            self._hand_over(collecting, frame, key=fault and i == len(before) - 1)
        if fault:
            if collecting.frames:
                collecting.key = len(collecting.frames) - 1
                self._finish(collecting)
        else:
            self._collecting.append(collecting)
        return collecting.record

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        """Keep one frame per ``spacing_s``; give the records in progress their key and later frames."""
        if self._collecting:
            self._collect(frame)
        if frame.monotonic >= self._next_ring - TIME_SLACK_S:
            self._ring.append(frame)
            self._next_ring = frame.monotonic + self.settings.spacing_s

    def _hand_over(self, collecting: _Collecting, frame: Frame, key: bool = False) -> None:
        self._work.put(_Encode(collecting.record, len(collecting.frames), frame, key))
        collecting.frames.append((frame.seq, frame.monotonic))

    def _collect(self, frame: Frame) -> None:
        done = []
        for collecting in self._collecting:
            if collecting.key is None:
                collecting.key = len(collecting.frames)
                self._hand_over(collecting, frame, key=True)
                collecting.next_after = frame.monotonic + self.settings.spacing_s
            elif frame.monotonic >= collecting.next_after - TIME_SLACK_S:
                self._hand_over(collecting, frame)
                collecting.next_after = frame.monotonic + self.settings.spacing_s
            if len(collecting.frames) - collecting.key - 1 >= self.settings.frames_after:
                done.append(collecting)
        for collecting in done:
            self._collecting.remove(collecting)
            self._finish(collecting)

    def _finish(self, collecting: _Collecting) -> None:
        assert collecting.key is not None
        self._work.put(_Finish(collecting.record, collecting.change, collecting.frames, collecting.key))

    # --- the worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.records.scan()
        except OSError as exc:
            log.warning("evidence: cannot read %s: %s", self.records.root, exc)
        encoded: dict[str, _Encoded] = {}
        while True:
            item = self._work.get()
            if item is None:
                return
            try:
                if isinstance(item, _Encode):
                    self._encode(encoded.setdefault(item.record, _Encoded()), item)
                else:
                    self._write(encoded.pop(item.record, _Encoded()), item)
            except Exception as exc:  # a full or read-only disk must never stop the daemon
                encoded.pop(item.record, None)
                log.warning("evidence: could not save %s: %s", item.record, exc)

    def _encode(self, into: _Encoded, item: _Encode) -> None:
        pixels = item.frame.pixels
        into.files[f"{item.index}.jpg"] = encode_jpeg(pixels, self.settings.jpeg_quality)
        into.sizes[item.index] = (int(pixels.shape[1]), int(pixels.shape[0]))
        if item.key and self.on_snapshot is not None:
            into.small = encode_jpeg(shrink(pixels, self.settings.mqtt_width), min(self.settings.jpeg_quality, 75))

    def _write(self, done: _Encoded, finish: _Finish) -> None:
        if not done.sizes:
            return
        key_time = finish.frames[finish.key][1]
        meta = {"id": finish.record, **change_summary(finish.change), "key": finish.key,
                "frames": [{"index": i, "seq": seq, "offset_s": round(t - key_time, 3), "width": done.sizes[i][0],
                            "height": done.sizes[i][1]} for i, (seq, t) in enumerate(finish.frames) if i in done.sizes]}
        self.records.add(finish.record, done.files, meta)
        self.written += 1
        if self.on_snapshot is not None and done.small:
            self.on_snapshot(SnapshotReady(finish.record, finish.change, done.small))

    def close(self) -> None:
        """Write what is still collecting (with the frames it has), then stop the worker."""
        for collecting in self._collecting:
            if collecting.key is None and collecting.frames:  # stopped before the change's own frame came
                collecting.key = len(collecting.frames) - 1
            if collecting.key is not None:
                self._finish(collecting)
        self._collecting.clear()
        self._work.put(None)
        self._thread.join(10.0)
