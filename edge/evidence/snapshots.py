"""EvidenceRecorder: the frames before and after every level or health change, kept as JPEG.

The daemon asks :meth:`EvidenceRecorder.snapshot_for` when it reports a change (in the frame loop);
the answer, a record id, goes into the event, so a subscriber can fetch the pictures from the
console (``/api/snapshots/<id>.jpg``). As a frame observer it keeps a few recent frames (one per
``spacing_s``), takes the frame of the change as the key frame and collects ``frames_after`` more;
then its worker thread encodes them and writes the record. The frame loop only moves references.

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
from edge.events import Change, HealthChanged, LevelChanged
from edge.evidence.images import encode_jpeg, shrink
from edge.evidence.store import Records, new_record_id
from edge.messages import iso_utc
from edge.pipeline import FrameResult
from edge.sources.base import Frame
from edge.state import DeviceState, Health

log = logging.getLogger(__name__)
HOUR_S = 3600.0


@dataclass
class _Pending:
    record: str
    change: Change
    before: list[Frame]
    key: Frame | None = None
    after: list[Frame] = field(default_factory=list)
    next_after: float = 0.0


@dataclass(frozen=True)
class SnapshotReady:
    """A record was written: its id, the change it shows and a small JPEG of the key frame."""

    record: str
    change: Change
    jpeg: bytes


def change_summary(change: Change) -> dict[str, object]:
    """What a record says about its change (also what the console lists)."""
    common: dict[str, object] = {"time": iso_utc(change.wall), "wall": change.wall, "frame_seq": change.frame_seq,
                                 "reason": change.reason, "model_sha256": change.model_sha256}
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
        self._ring: deque[Frame] = deque(maxlen=max(1, settings.frames_before))
        self._next_ring = float("-inf")
        self._pending: list[_Pending] = []
        self._made: deque[float] = deque()  # when each record of the last hour was made
        self.skipped = 0
        self._skipped_logged_at = float("-inf")
        self.written = 0
        self._work: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="evidence", daemon=True)
        self._thread.start()

    # --- the frame loop ---------------------------------------------------------------------------

    def snapshot_for(self, change: Change) -> str | None:
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
        pending = _Pending(new_record_id(change.wall), change, list(self._ring)[-self.settings.frames_before:]
                           if self.settings.frames_before else [])
        if isinstance(change, HealthChanged) and change.health == Health.CAMERA_FAULT:
            # No frame comes while the camera is down: keep the last ones it gave.
            if pending.before:
                pending.key = pending.before.pop()
            self._work.put(pending)
        else:
            self._pending.append(pending)
        return pending.record

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        """Keep one frame per ``spacing_s``; complete the records waiting for their key and later frames."""
        if self._pending:
            self._collect(frame)
        if frame.monotonic >= self._next_ring:
            self._ring.append(frame)
            self._next_ring = frame.monotonic + self.settings.spacing_s

    def _collect(self, frame: Frame) -> None:
        done = []
        for pending in self._pending:
            if pending.key is None:
                pending.key = frame
                pending.next_after = frame.monotonic + self.settings.spacing_s
            elif frame.monotonic >= pending.next_after:
                pending.after.append(frame)
                pending.next_after = frame.monotonic + self.settings.spacing_s
            if len(pending.after) >= self.settings.frames_after:
                done.append(pending)
        for pending in done:
            self._pending.remove(pending)
            self._work.put(pending)

    # --- the worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.records.scan()
        except OSError as exc:
            log.warning("evidence: cannot read %s: %s", self.records.root, exc)
        while True:
            pending = self._work.get()
            if pending is None:
                return
            try:
                self._write(pending)
            except Exception as exc:  # a full or read-only disk must never stop the daemon
                log.warning("evidence: could not save %s: %s", pending.record, exc)

    def _write(self, pending: _Pending) -> None:
        frames = [*pending.before, *([pending.key] if pending.key is not None else []), *pending.after]
        if not frames:
            return
        key_index = len(pending.before) if pending.key is not None else len(frames) - 1
        key = frames[key_index]
        quality = self.settings.jpeg_quality
        files = {f"{i}.jpg": encode_jpeg(f.pixels, quality) for i, f in enumerate(frames)}
        meta = {"id": pending.record, **change_summary(pending.change), "key": key_index,
                "frames": [{"index": i, "seq": f.seq, "offset_s": round(f.monotonic - key.monotonic, 3),
                            "width": int(f.pixels.shape[1]), "height": int(f.pixels.shape[0])} for i, f in enumerate(frames)]}
        self.records.add(pending.record, files, meta)
        self.written += 1
        if self.on_snapshot is not None:
            small = encode_jpeg(shrink(key.pixels, self.settings.mqtt_width), min(quality, 75))
            self.on_snapshot(SnapshotReady(pending.record, pending.change, small))

    def close(self) -> None:
        """Write what is still collecting (with the frames it has), then stop the worker."""
        for pending in self._pending:
            self._work.put(pending)
        self._pending.clear()
        self._work.put(None)
        self._thread.join(10.0)
