"""The service: the frame loop and its lifecycle (start, camera faults, telemetry, shutdown)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.config import EdgeConfig
from edge.errors import SourceError
from edge.health import CAMERA_FAULT, OK
from edge.inference import Classifier
from edge.levels import LevelChange
from edge.messages import DeviceIdentity, Topics, encode, health_event, level_event, telemetry
from edge.mqtt import MqttLink
from edge.notify import Notifier
from edge.outbox import Outbox
from edge.pipeline import Pipeline, frame_problem
from edge.sources.base import Frame, FrameSource
from edge.telemetry import Stats

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """Everything the daemon drives, built by the command line (or a test, or the benchmark)."""

    config: EdgeConfig
    classifier: Classifier
    source: FrameSource
    outbox: Outbox
    link: MqttLink
    notifier: Notifier


class Daemon:
    """Reads frames until stopped or the stream ends; never lets one bad frame or camera fault end it."""

    def __init__(self, parts: Parts, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.parts = parts
        self.config = parts.config
        self.stop = stop or threading.Event()
        self._clock = clock
        card = parts.classifier.card
        self.identity = DeviceIdentity(self.config.device.site, self.config.device.line, self.config.device.name,
                                       card.tflite_sha256)
        self.topics = Topics(self.config.topic_prefix)
        self.pipeline = Pipeline(self.config, parts.classifier)
        self.stats = Stats(clock())
        self.health = OK
        self.first_inference_at: float | None = None
        self.loop_ended_at: float | None = None
        self.runtime_label = f"{parts.classifier.runtime.name} {parts.classifier.runtime.version}"
        self._last_bad_log = 0.0

    # --- messages ----------------------------------------------------------------------------

    def _emit_level(self, change: LevelChange, frame: Frame) -> None:
        def build(seq: int, event_id: str) -> str:
            return encode(level_event(self.identity, event_id=event_id, seq=seq, wall=time.time(), roi=change.roi,
                                      level=change.level, previous=change.previous, probability=change.probability,
                                      frame_seq=frame.seq, frame_wall=frame.wall))

        row = self.parts.outbox.add_event(self.topics.event, build)
        log.info("level %s -> %s on %s (p=%.2f, frame %d): event #%d stored", change.previous, change.level, change.roi,
                 change.probability, frame.seq, row.seq)
        self.parts.link.set_state(change.roi, change.level)

    def _emit_health(self, health: str, reason: str, frame_seq: int) -> None:
        if health == self.health:
            return
        previous, self.health = self.health, health

        def build(seq: int, event_id: str) -> str:
            return encode(health_event(self.identity, event_id=event_id, seq=seq, wall=time.time(), health=health,
                                       previous=previous, reason=reason, frame_seq=frame_seq))

        self.parts.outbox.add_event(self.topics.event, build)
        (log.info if health == OK else log.warning)("camera health %s -> %s %s", previous, health, reason)
        self.parts.link.set_health(health)
        self.parts.notifier.status(f"camera {health} {reason}".strip())

    def publish_telemetry(self) -> None:
        stats = self.stats.summary(self._clock())
        stats.update({
            "runtime": self.runtime_label,
            "levels": {name: lv.level for name, lv in self.pipeline.levels.items()},
            "health": self.health,
            "mqtt": {"connected": self.parts.link.connected, "last_error": self.parts.link.last_error},
            "outbox": self.parts.outbox.counts(),
        })
        self.parts.outbox.add("telemetry", self.topics.telemetry, encode(telemetry(self.identity, wall=time.time(), stats=stats)), 0)
        self.parts.link.wake()
        # `systemctl status` shows this line: the place an operator looks first.
        mqtt = "connected" if self.parts.link.connected else f"NOT connected: {self.parts.link.last_error}"
        self.parts.notifier.status(f"{stats['fps']:.1f} fps, camera {self.health}, mqtt {mqtt}, "
                                   f"{stats['outbox']['pending']} message(s) waiting")

    # --- camera ------------------------------------------------------------------------------

    def _reopen(self, reason: str, frame_seq: int) -> bool:
        """Close and reopen the source with capped backoff until it works or we are stopped."""
        self._emit_health(CAMERA_FAULT, reason, frame_seq)
        try:
            self.parts.source.close()
        except Exception as exc:
            log.warning("closing the source failed: %s", exc)
        delay = self.config.health.reopen_min_s
        while not self.stop.is_set():
            self._wait(delay)
            if self.stop.is_set():
                return False
            try:
                self.parts.source.open()
                self.stats.source_restarted()
                log.info("source %s reopened", self.parts.source.name)
                return True
            except SourceError as exc:
                log.warning("source still failing: %s; next try in %.1f s", exc, min(delay * 2, self.config.health.reopen_max_s))
                delay = min(delay * 2, self.config.health.reopen_max_s)
        return False

    def _wait(self, seconds: float) -> None:
        # A deliberate, bounded wait is progress, not a stall: keep the watchdog fed meanwhile.
        end = self._clock() + seconds
        while not self.stop.is_set() and self._clock() < end:
            self.parts.notifier.watchdog()
            self.stop.wait(min(0.5, max(0.0, end - self._clock())))

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """The frame loop; returns the process exit code."""
        parts = self.parts
        parts.link.start()
        for name in self.pipeline.levels:
            parts.link.set_state(name, "ok")
        try:
            parts.source.open()
        except SourceError as exc:
            if not self._reopen(str(exc), -1):
                return self._shutdown()
        next_telemetry = self._clock() + self.config.telemetry.interval_s
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                frame = parts.source.read()
            except SourceError as exc:
                if not self._reopen(str(exc), self.stats.frames):
                    break
                continue
            if frame is None:
                log.info("source %s ended after %d frames", parts.source.name, self.stats.frames)
                break
            t1 = time.perf_counter()
            problem = frame_problem(frame.pixels)
            if problem is not None:
                self.stats.bad_frames += 1
                if self._clock() - self._last_bad_log > 10.0:
                    log.warning("skipping bad frame %d from %s: %s (%d so far)", frame.seq, parts.source.name, problem,
                                self.stats.bad_frames)
                    self._last_bad_log = self._clock()
                continue
            result = self.pipeline.process(frame)
            self.stats.frame_seen(frame.seq)
            t2 = time.perf_counter()
            verdict, reason = self.pipeline.health.verdict, self.pipeline.health.reason
            if verdict == CAMERA_FAULT:
                self.pipeline.health.reset()
                if not self._reopen(reason, frame.seq):
                    break
                continue
            if verdict != self.health:  # includes recovery after a camera fault: the first good frame says so
                self._emit_health(verdict, reason or "frames are good again", frame.seq)
            for change in result.changes:
                self._emit_level(change, frame)
            if result.changes:
                parts.link.wake()
            t3 = time.perf_counter()
            self._account(result.timings, t1 - t0, t3 - t2)
            if self.first_inference_at is None:
                self.first_inference_at = self._clock()
                parts.notifier.ready(f"watching {parts.source.name} with {self.runtime_label}")
                log.info("first inference done; ready (%s, %s)", parts.source.name, self.runtime_label)
            parts.notifier.watchdog()
            now = self._clock()
            if now >= next_telemetry:
                self.publish_telemetry()
                next_telemetry = now + self.config.telemetry.interval_s
        self.loop_ended_at = self._clock()
        return self._shutdown()

    def _account(self, timings: dict[str, float], capture: float, publish: float) -> None:
        s = self.stats.stage_seconds
        s["capture"] += capture
        s["preprocess"] += timings["preprocess"]
        s["inference"] += timings["inference"]
        s["levels"] += timings["levels"]
        s["publish"] += publish
        self.stats.inference_ms.append(timings["inference"] * 1000.0)

    def _shutdown(self) -> int:
        log.info("stopping: %d frames, %d bad", self.stats.frames, self.stats.bad_frames)
        self.parts.notifier.stopping()
        try:
            self.parts.source.close()
        except Exception as exc:
            log.warning("closing the source failed: %s", exc)
        self.parts.link.stop()
        self.parts.outbox.close()
        return 0
