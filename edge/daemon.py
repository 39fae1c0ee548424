"""The service: the frame loop and its lifecycle (start, camera faults, telemetry, shutdown).

Data flows one way: source -> pipeline (preprocess, infer, health, levels) -> the device state
-> publishers. The loop never waits on storage or the network: publishers hand everything to
their own threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from edge import clock
from edge.alarms import AcknowledgeRefused, Alarm, condition_of
from edge.alarms.store import AlarmStore
from edge.config import EdgeConfig
from edge.errors import SourceError
from edge.events import AlarmChanged, BeltChanged, HealthChanged, LevelChanged, TelemetrySnapshot
from edge.framing import MAX_PITCHES, MIN_PITCHES, FramingWatch, along_flow_profile
from edge.motion import FlowWatch
from edge.pipeline import FrameClassifier, FrameResult, Pipeline, frame_problem
from edge.publishing import Publisher
from edge.service.notify import Notifier
from edge.sources.base import Frame, FrameSource
from edge.state import Belt, DeviceState, Health, Level
from edge.telemetry import FrameStats

log = logging.getLogger(__name__)
FLOW = "flow"  # the reason of a level change the model judged
# The framing check (edge.framing) reads each region every few seconds while it shows a full flow: the camera's
# framing does not change between frames, and one reading costs a pass over the region's pixels.
FRAMING_INTERVAL_S = 2.0


class FrameObserver(Protocol):
    """A feature that watches every judged frame (the console, evidence snapshots, a shadow model).

    Called in the frame loop: it must return at once and do its real work on its own thread.
    """

    def on_frame(self, frame: Frame, result: FrameResult, state: DeviceState) -> None:
        """One frame, what the pipeline made of it, and the device state after it."""


Pictured = LevelChanged | HealthChanged  # the changes evidence keeps frames of (an alarm's acknowledgement has none)


class SnapshotSource(Protocol):
    """Evidence kept around each change (edge.evidence): the daemon asks for a reference to put in the event."""

    def snapshot_for(self, change: Pictured) -> str | None:
        """A snapshot id for ``change`` (its frames are saved in the background), or None."""

    def close(self) -> None:
        """Save what is still being collected and stop (at shutdown)."""


@dataclass
class DaemonParts:
    """Everything the daemon drives, built by start-up (or a test, or the benchmark)."""

    config: EdgeConfig
    classifier: FrameClassifier
    source: FrameSource
    publisher: Publisher
    notifier: Notifier = field(default_factory=lambda: Notifier({}))
    wall_clock: Callable[[], float] = time.time
    clock_synced: Callable[[], bool] = clock.clock_synced
    observers: list[FrameObserver] = field(default_factory=list)
    evidence: SnapshotSource | None = None
    alarm_store: AlarmStore | None = None  # None: alarms kept in memory only (tests)
    figures: list[Callable[[], dict[str, Any]]] = field(default_factory=list)  # features' own telemetry members


def _scene_reason(verdict: str) -> str:
    """A level event's reason for a ROI whose scene is not a belt: always starts 'not a belt scene'."""
    return verdict if verdict.startswith("not a belt scene") else f"not a belt scene: {verdict}"


class Daemon:
    """Reads frames until stopped or the stream ends; never lets one bad frame or camera fault end it."""

    def __init__(self, parts: DaemonParts, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.parts = parts
        self.config = parts.config
        self.stop = stop or threading.Event()
        self._clock = clock
        self.pipeline = Pipeline(self.config, parts.classifier)
        rois = [roi.name for roi in self.config.rois]
        restored = parts.alarm_store.load() if parts.alarm_store is not None else {}
        self.state = DeviceState.starting(rois, {roi: alarm for roi, alarm in restored.items() if roi in rois},
                                          Level(self.config.belt.status_when_stopped))
        self._judged_once: set[str] = set()  # ROIs whose first judged level has been published
        self._belt_speed: float | None = None  # the last reliable belt speed (frame pixels per second)
        self._belt_direction: str | None = None  # which way the belt runs in the picture, when the readings agree
        self._flow_watch = FlowWatch()
        self._flows = {roi.name: roi.flow for roi in self.config.rois}  # what each ROI's flow says, for the watch
        self._framing = {roi.name: FramingWatch() for roi in self.config.rois}  # pitches in each ROI's view
        self._framing_warned: set[str] = set()
        self._next_framing = float("-inf")
        self.stats = FrameStats(clock())
        self.first_inference_at: float | None = None
        self.loop_ended_at: float | None = None
        self.runtime_label = f"{parts.classifier.runtime.name} {parts.classifier.runtime.version}"
        self.model_sha256 = str(parts.classifier.card.tflite_sha256)
        self._last_bad_log = float("-inf")
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()

    # --- requests from other threads ---------------------------------------------------------------

    def call_soon(self, work: Callable[[], Any]) -> Future[Any]:
        """Run ``work`` in the frame loop between two frames (or while it waits for the camera).

        The way other threads (commands, the console) change what the daemon owns without locks;
        the future carries the result or the exception.
        """
        future: Future[Any] = Future()
        self._calls.put((work, future))
        return future

    def _run_calls(self) -> None:
        while True:
            try:
                work, future = self._calls.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except Exception as exc:
                    future.set_exception(exc)

    def use_classifier(self, classifier: FrameClassifier) -> None:
        """Judge the next frame with ``classifier`` (in the frame loop only: :meth:`call_soon`). The levels'
        smoothing and the image health carry on, so the plant sees no gap; every event from here on
        carries the new model's sha256."""
        self.pipeline.use_classifier(classifier)
        self.parts.classifier = classifier
        self.runtime_label = f"{classifier.runtime.name} {classifier.runtime.version}"
        self.model_sha256 = str(classifier.card.tflite_sha256)

    # --- the published state ---------------------------------------------------------------------

    def _publish_state(self, health: Health, health_reason: str, levels: dict[str, Level], frame_seq: int,
                       frame_wall: float, smoothed: dict[str, float], not_a_belt: dict[str, str] | None = None,
                       belt: Belt | None = None, speed_px_s: float | None = None) -> None:
        """Replace the device state; report each change as an event, then the new retained view.

        ``not_a_belt``: ROIs whose scene is not a belt with product, and why (their level is unknown).
        ``belt``: the belt's motion state (None: unchanged)."""
        old = self.state
        new = DeviceState(health, tuple((roi, levels[roi]) for roi, _ in old.levels), old.alarms,
                          old.belt if belt is None else belt, old.stopped_level)
        if new == old:
            return
        wall, synced, publisher = self.parts.wall_clock(), self.parts.clock_synced(), self.parts.publisher
        alarms = {roi: old.alarm(roi).condition(condition_of(level), wall) for roi, level in new.levels if level != old.level(roi)}
        if new.health != old.health:
            reason = health_reason or "frames are good again"
            publisher.changed(self._with_snapshot(
                HealthChanged(new.health, old.health, reason, frame_seq, wall, synced, self.model_sha256)))
            (log.info if new.health == Health.OK else log.warning)("camera health %s -> %s %s", old.health, new.health, reason)
            self.parts.notifier.status(f"camera {new.health} {reason}".strip())
        if new.belt != old.belt and Belt.UNKNOWN not in (new.belt, old.belt):  # the first reading after start is no change
            speed = "no reliable reading" if speed_px_s is None else f"{speed_px_s:.1f} px/s"
            reason = (f"belt speed below {self.config.belt.stopped_below:g} frame widths/s for {self.config.belt.stopped_after_s:g} s"
                      if new.belt == Belt.STOPPED else "the belt moves again")
            publisher.changed(BeltChanged(new.belt, old.belt, speed_px_s, f"{reason} ({speed})", frame_seq, wall, synced,
                                          self.model_sha256))
            (log.warning if new.belt == Belt.STOPPED else log.info)("belt %s -> %s: %s (%s)", old.belt, new.belt, reason, speed)
        not_a_belt = not_a_belt or {}
        for roi, level in new.levels:
            previous = old.level(roi)
            if level == previous:
                continue
            if roi not in self._judged_once:  # the first verdict after start is not a change in flow
                if level != Level.UNKNOWN:
                    self._judged_once.add(roi)
                continue
            if level == Level.UNKNOWN:
                reason = (f"{new.health}: {health_reason}" if new.health != Health.OK
                          else _scene_reason(not_a_belt[roi]) if roi in not_a_belt else "the scene cannot be judged")
            else:
                reason = FLOW if previous != Level.UNKNOWN else "the picture can be judged again"
            probability = smoothed.get(roi, 0.0)
            publisher.changed(self._with_snapshot(LevelChanged(roi, level, previous, probability, reason, frame_seq, frame_wall,
                                                               wall, synced, self.model_sha256)))
            log.info("level %s -> %s on %s (p=%.2f, frame %d): %s", previous, level, roi, probability, frame_seq, reason)
        changed_alarms = {roi: alarm for roi, alarm in alarms.items() if alarm != old.alarm(roi)}
        for roi, alarm in changed_alarms.items():
            self._alarm_changed(roi, alarm, old.alarm(roi), f"level {new.level(roi)}", new.level(roi), wall, synced)
        self.state = new.with_alarms(changed_alarms)
        if changed_alarms:
            self._save_alarms()
        publisher.state_changed(self.state)

    # --- alarms --------------------------------------------------------------------------------------

    def _alarm_changed(self, roi: str, alarm: Alarm, previous: Alarm, reason: str, level: Level, wall: float,
                       synced: bool) -> None:
        self.parts.publisher.changed(AlarmChanged(roi, alarm, previous.state, reason, level, wall, synced, self.model_sha256))
        (log.warning if alarm.state.unacknowledged else log.info)("alarm on %s: %s -> %s (%s)", roi, previous.state,
                                                                  alarm.state, reason)

    def _save_alarms(self) -> None:
        if self.parts.alarm_store is not None:
            self.parts.alarm_store.save(dict(self.state.alarms))

    def acknowledge(self, roi: str, by: str) -> Alarm:
        """An operator acknowledged ``roi``'s alarm. In the frame loop only (use :meth:`call_soon`);
        raises :class:`edge.alarms.AcknowledgeRefused` when there is nothing to acknowledge."""
        rois = [name for name, _ in self.state.levels]
        if roi not in rois:
            raise AcknowledgeRefused(f"unknown roi {roi!r}; rois: {', '.join(rois)}")
        previous = self.state.alarm(roi)
        wall = self.parts.wall_clock()
        alarm = previous.acknowledge(by, wall)
        self._alarm_changed(roi, alarm, previous, f"acknowledged by {by}", self.state.level(roi), wall, self.parts.clock_synced())
        self.state = self.state.with_alarms({roi: alarm})
        self._save_alarms()
        self.parts.publisher.state_changed(self.state)
        return alarm

    def _with_snapshot(self, change: Pictured) -> Pictured:
        evidence = self.parts.evidence
        if evidence is None:
            return change
        try:
            snapshot = evidence.snapshot_for(change)
        except Exception:  # evidence is a nice-to-have: never let it cost an event
            log.exception("evidence for %s failed", type(change).__name__)
            return change
        return replace(change, snapshot=snapshot) if snapshot is not None else change

    def _publish_frame(self, frame: Frame, result: FrameResult) -> None:
        usable = result.health == Health.OK
        levels = {roi: (result.judged[roi] if usable and roi not in result.not_a_belt else Level.UNKNOWN)
                  for roi, _ in self.state.levels}
        motion = result.motion
        belt = None if motion is None else Belt.STOPPED if motion.stopped else Belt.MOVING
        if motion is not None and self.state.belt == Belt.UNKNOWN and motion.speed_px_s is None:
            belt = None  # no reliable reading yet: the belt is not known to move
        self._publish_state(result.health, result.health_reason, levels, frame.seq, frame.wall, result.smoothed,
                            result.not_a_belt, belt, None if motion is None else motion.speed_px_s)
        self._belt_speed = None if motion is None else motion.speed_px_s
        self._belt_direction = None if motion is None else motion.direction
        if usable and frame.monotonic >= self._next_framing:
            self._next_framing = frame.monotonic + FRAMING_INTERVAL_S
            self._read_framing(frame, levels, result)
        if motion is not None and motion.direction is not None:
            for name in self._flow_watch.update(motion.direction, self._flows, frame.monotonic):
                log.warning("ROI %s: the belt runs %s the picture but its flow is %s; the model reads a flow across best: "
                            "set rois[].flow: %s for it (docs/detection.md)", name, motion.direction, self._flows[name],
                            motion.direction)

    def _read_framing(self, frame: Frame, levels: dict[str, Level], result: FrameResult) -> None:
        """Feed each ROI that reads a full flow of a belt to its framing watch; say once when its view spans fewer
        product pitches than the model was trained on (more, too, when that reading cannot be a harmonic)."""
        for name, box in self.pipeline.rois:
            if levels.get(name) != Level.OK or name in result.not_a_belt:
                continue
            watch = self._framing[name]
            watch.see(along_flow_profile(frame.pixels, box))
            outside = watch.outside_spec()
            if outside is None or name in self._framing_warned:
                continue
            self._framing_warned.add(name)
            side = "fewer" if outside < MIN_PITCHES else "more"
            log.warning("ROI %s: its view spans about %.2f product pitches along the flow, %s than the model was trained "
                        "on (%.1f to %.0f; docs/alert-spec.md advises 4 to 12): %s", name, outside, side,
                        MIN_PITCHES, MAX_PITCHES, "a single missing row can read as a gap: widen the ROI or zoom out" if side == "fewer"
                        else "a 2-pitch gap is a sliver of the view and can be missed: narrow the ROI or zoom in")

    def _camera_fault(self, reason: str, frame_seq: int) -> None:
        unknown = {roi: Level.UNKNOWN for roi, _ in self.state.levels}
        smoothed = {name: lv.smoothed for name, lv in self.pipeline.levels.items()}
        # Blind, the device cannot tell whether the belt moves: unknown, without an event (the health event says why).
        self._publish_state(Health.CAMERA_FAULT, reason, unknown, frame_seq, self.parts.wall_clock(), smoothed,
                            belt=Belt.UNKNOWN if self.config.belt.enabled else None)
        self._belt_speed = None

    def publish_telemetry(self) -> None:
        figures = self.stats.summary(self._clock())
        link = self.parts.publisher.link_status()
        figures.update({
            "runtime": self.runtime_label,
            "levels": {roi: str(level) for roi, level in self.state.levels},
            "health": str(self.state.health),
            "belt": {"state": str(self.state.belt),
                     "speed_px_s": None if self._belt_speed is None else round(self._belt_speed, 1),
                     "direction": self._belt_direction},
            "view_pitches": {name: None if (p := watch.pitches()) is None else round(p, 2) for name, watch in self._framing.items()},
            "mqtt": {"connected": link.connected, "last_error": link.last_error, "not_sent": link.not_sent},
            "outbox": {"pending": link.pending, "dropped": link.dropped, "durable": link.durable},
        })
        for extra in self.parts.figures:
            figures.update(extra())
        self.parts.publisher.telemetry(TelemetrySnapshot(figures, self.parts.wall_clock(), self.parts.clock_synced(),
                                                         self.model_sha256))
        # `systemctl status` shows this line: the place an operator looks first.
        mqtt = "connected" if link.connected else f"NOT connected: {link.last_error}"
        self.parts.notifier.status(f"{figures['fps']:.1f} fps, camera {self.state.health}, mqtt {mqtt}, "
                                   f"{link.pending} event(s) waiting")

    # --- configuration changes (the console's lane editor) ----------------------------------------

    def reconfigure(self, config: EdgeConfig, classifier: FrameClassifier | None = None) -> None:
        """Adopt ``config`` (its ROIs changed) without a restart; run it in the frame loop (:meth:`call_soon`).

        ``classifier`` replaces the model's interpreter when the number of ROIs (its batch) changed; it is
        built beforehand on the caller's thread so the loop does not wait for it. ROIs with the same name
        and box keep their smoothing and level; new or moved ones start unknown (no event: a config change
        is not a change in flow); alarm records follow the ROI's name. Publishers get the new state, from
        which ROIs that are gone have left.
        """
        old_pipeline, old_state = self.pipeline, self.state
        if classifier is not None:
            self.parts.classifier = classifier
        pipeline = Pipeline(config, self.parts.classifier)
        kept = {name for name, box in pipeline.rois if (name, box) in old_pipeline.rois}
        for name in kept:
            pipeline.levels[name] = old_pipeline.levels[name]
        for name in kept:
            pipeline.scenes[name] = old_pipeline.scenes[name]
            if pipeline.light_belts is not None and old_pipeline.light_belts is not None:
                pipeline.light_belts[name] = old_pipeline.light_belts[name]
            if pipeline.dark_onsets is not None and old_pipeline.dark_onsets is not None:
                pipeline.dark_onsets[name] = old_pipeline.dark_onsets[name]
            if pipeline.palettes is not None and old_pipeline.palettes is not None:  # the same place on the same belt
                pipeline.palettes[name] = old_pipeline.palettes[name]
            if name in old_pipeline.level_before_scene:
                pipeline.level_before_scene[name] = old_pipeline.level_before_scene[name]
            if name in old_pipeline.returning:
                pipeline.returning[name] = old_pipeline.returning[name]
        pipeline.health = old_pipeline.health  # the camera is the same camera
        pipeline.motion = old_pipeline.motion  # and the same belt
        self.config = self.parts.config = config
        self.pipeline = pipeline
        self._flow_watch.reset()
        self._flows = {roi.name: roi.flow for roi in config.rois}
        self._framing = {name: self._framing[name] if name in kept else FramingWatch() for name, _ in pipeline.rois}
        self._framing_warned &= kept
        self._judged_once &= kept
        old_levels = dict(old_state.levels)
        names = [name for name, _ in pipeline.rois]
        # A lane's alarm record goes with its name (an unacknowledged alarm must not vanish because a lane moved).
        self.state = DeviceState(old_state.health, tuple((name, old_levels[name] if name in kept else Level.UNKNOWN) for name in names),
                                 tuple((name, old_state.alarm(name)) for name in names), old_state.belt, old_state.stopped_level)
        self._save_alarms()
        self.parts.publisher.state_changed(self.state)
        log.info("regions of interest now %s (kept as they were: %s)", ", ".join(n for n, _ in pipeline.rois),
                 ", ".join(sorted(kept)) or "none")

    # --- camera ------------------------------------------------------------------------------------

    def _reopen(self, reason: str, frame_seq: int) -> bool:
        """Close and reopen the source with capped backoff until it works or we are stopped."""
        self._camera_fault(reason, frame_seq)
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
                self.pipeline.forget_picture()
                for watch in self._framing.values():  # the reopened camera may be framed otherwise (a warning stays said)
                    watch.reset()
                log.info("source %s reopened", self.parts.source.name)
                return True
            except SourceError as exc:
                delay = min(delay * 2, self.config.health.reopen_max_s)
                log.warning("source still failing: %s; next try in %.1f s", exc, delay)
        return False

    def _wait(self, seconds: float) -> None:
        # A deliberate, bounded wait is progress, not a stall: keep the watchdog fed meanwhile.
        end = self._clock() + seconds
        while not self.stop.is_set() and self._clock() < end:
            self.parts.notifier.watchdog()
            self._run_calls()
            self.stop.wait(min(0.1, max(0.0, end - self._clock())))

    # --- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        """The frame loop; returns the process exit code."""
        parts = self.parts
        parts.publisher.start(self.state)
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
                self._bad_frame(frame, problem)
                continue
            result = self.pipeline.process(frame)
            self.stats.frame_seen(frame.seq)
            t2 = time.perf_counter()
            if result.health == Health.CAMERA_FAULT:  # frozen: only reopening the camera can help
                if not self._reopen(result.health_reason, frame.seq):
                    break
                continue
            self._publish_frame(frame, result)
            for observer in parts.observers:
                observer.on_frame(frame, result, self.state)
            self._run_calls()
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

    def _cancel_calls(self) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            future.cancel()

    def _bad_frame(self, frame: Frame, problem: str) -> None:
        self.stats.bad_frames += 1
        if self._clock() - self._last_bad_log > 10.0:
            log.warning("skipping bad frame %d from %s: %s (%d so far)", frame.seq, self.parts.source.name, problem,
                        self.stats.bad_frames)
            self._last_bad_log = self._clock()

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
        self._cancel_calls()
        if self.parts.evidence is not None:
            self.parts.evidence.close()
        self.parts.publisher.close()
        if self.parts.alarm_store is not None:
            self.parts.alarm_store.close()
        return 0
