"""SparkplugPublisher: the device as a Sparkplug B 3.0 edge node, beside the plain JSON topics.

Implements :class:`edge.publishing.Publisher` on its own :class:`edge.mqtt.MqttTransport` (its own
MQTT connection, whose will is the NDEATH, and its own outbox file), and
:class:`edge.daemon.FrameObserver` for the smoothed probabilities.

* Level, camera-health, status and alarm changes are data messages (DDATA / NDATA) stored in the
  outbox first: when the broker or the primary host is away they are held, and sent after the next
  births with ``is_historical`` set. Births always carry the current values.
* FPS and probability updates are reported by exception with a deadband and never stored.
* A camera fault kills every ROI device (DDEATH: its tags go stale in the host); a picture again
  brings them back (DBIRTH).
* Commands (NCMD, DCMD) run on the transport's thread: ``Node Control/Rebirth``,
  ``Device Control/Rebirth``, ``Device Control/Snapshot`` and ``Alarm/Acknowledge`` (the value is
  the operator's name). The last two reach the daemon through callables the start-up wires in.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge import __version__
from edge.clock import clock_synced
from edge.config import EdgeConfig
from edge.events import AlarmChanged, Change, HealthChanged, LevelChanged, TelemetrySnapshot
from edge.mqtt import MqttSettings, MqttTransport
from edge.outbox import Outbox
from edge.publishing import LinkStatus
from edge.snapshots import Snapshot
from edge.sparkplug import metrics as m
from edge.sparkplug.host import HostChange, PrimaryHost
from edge.sparkplug.metrics import Catalogue, Node, NodeView, SparkplugTopics
from edge.sparkplug.payloads import PayloadError, Value, decode_command
from edge.sparkplug.session import BdSeqFile, SparkplugSession, data_record
from edge.state import DeviceState, Health

log = logging.getLogger(__name__)
MAX_COMMAND_BYTES = 8192


@dataclass(frozen=True)
class SparkplugOptions:
    """The ``sparkplug:`` config section, resolved."""

    group_id: str
    edge_node_id: str
    primary_host_id: str | None = None
    probability_deadband: float = 0.05  # report a smoothed probability when it moved this much ...
    min_interval_s: float = 1.0  # ... and at most this often per ROI
    fps_deadband: float = 1.0
    speed_deadband: float = 2.0  # belt speed, frame pixels per second


def _ms(wall: float) -> int:
    return round(wall * 1000)


class SparkplugPublisher:
    """Publishes the device as a Sparkplug B edge node with one device per ROI."""

    def __init__(self, options: SparkplugOptions, view: NodeView, rois: Sequence[str], settings: MqttSettings, outbox: Outbox,
                 bd_seq: BdSeqFile, clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.topics = SparkplugTopics(options.group_id, options.edge_node_id)
        self.catalogue = Catalogue(rois)
        self.host = PrimaryHost(options.primary_host_id) if options.primary_host_id else None
        self._view = replace(view, devices={roi: view.device(roi) for roi in rois})
        self._lock = threading.Lock()  # the frame loop and the snapshot thread both update the view
        self._clock, self._wall = clock, wall_clock
        self.session = SparkplugSession(self.topics, self.catalogue, lambda: self._view, bd_seq, self.host)
        self.transport = MqttTransport(settings, outbox, clock, session=self.session)
        self._last_probability: dict[str, tuple[float, float]] = {}  # roi -> (value, monotonic time) last reported
        self._last_fps: float | None = None
        self.acknowledge: Callable[[str, str], Future[Any]] | None = None  # wired by start-up: (roi, operator)
        self.take_snapshot: Callable[[str], Any] | None = None  # wired by start-up: (roi)
        self.transport.subscribe(self.topics.node("NCMD"), self._on_ncmd)
        # One filter for every device's commands: lanes drawn later in the console are devices too.
        self.transport.subscribe_filter(self.topics.device("DCMD", "+"), self._on_any_dcmd)
        if self.host is not None:
            self.transport.subscribe(SparkplugTopics.state(self.host.host_id), self._on_state)

    # --- Publisher ---------------------------------------------------------------------------------

    def start(self, state: DeviceState) -> None:
        self.state_changed(state)
        self.transport.start()

    def state_changed(self, state: DeviceState) -> None:
        rois = [roi for roi, _ in state.levels]
        if rois != self.catalogue.rois:
            self._rois_changed(rois)
        with self._lock:
            old = self._view
            view = replace(old, status=str(state.summary), health=str(state.health), belt=str(state.belt))
            for roi, level in state.levels:
                view = view.with_device(roi, level=str(level), alarm=state.alarm(roi))
            self._view = view
        changed: list[tuple[str, Value]] = [(spec.name, value) for spec, value, before in (
            (Node.STATUS, view.status, old.status), (Node.BELT, view.belt, old.belt)) if value != before]
        if changed:
            self._store(None, changed, self._wall())

    def changed(self, change: Change) -> None:
        if isinstance(change, LevelChanged):
            with self._lock:
                self._view = self._view.with_device(change.roi, level=str(change.level), probability=change.probability)
            self._last_probability[change.roi] = (change.probability, self._clock())
            if self._view.device(change.roi).alive:
                self._store(change.roi, [(m.LEVEL, str(change.level)), (m.PROBABILITY, change.probability)], change.wall)
        elif isinstance(change, AlarmChanged):
            with self._lock:
                self._view = self._view.with_device(change.roi, alarm=change.alarm)
            if self._view.device(change.roi).alive:
                self._store(change.roi, m.alarm_values(change.alarm), change.wall)
        elif isinstance(change, HealthChanged):
            self._health_changed(change)

    def _rois_changed(self, rois: list[str]) -> None:
        """Lanes were added, removed or moved: removed devices die, then the node is born again with the new set."""
        gone = [roi for roi in self.catalogue.rois if roi not in rois]
        for roi in gone:
            if self._view.device(roi).alive:
                self.transport.send(self.topics.device("DDEATH", roi), self.session.ddeath)
        with self._lock:
            self._view = replace(self._view, devices={roi: self._view.device(roi) for roi in rois})
            self.catalogue.set_rois(rois)
        for roi in gone:
            self._last_probability.pop(roi, None)
        log.info("Sparkplug devices now %s: rebirth", ", ".join(rois))
        self.transport.rebirth()

    def _on_any_dcmd(self, topic: str, payload: bytes) -> None:
        roi = topic.rsplit("/", 1)[-1]
        if roi in self.catalogue.devices:
            self._on_dcmd(roi, payload)
        else:
            log.warning("Sparkplug DCMD for unknown device %r ignored", roi)

    def _health_changed(self, change: HealthChanged) -> None:
        with self._lock:
            self._view = replace(self._view, health=str(change.health))
        self._store(None, [(Node.HEALTH.name, str(change.health))], change.wall)
        fault, was_fault = change.health == Health.CAMERA_FAULT, change.previous == Health.CAMERA_FAULT
        if fault == was_fault:
            return
        with self._lock:
            for roi in self.catalogue.rois:
                self._view = self._view.with_device(roi, alive=not fault)
        for roi in self.catalogue.rois:  # the ROIs cannot be judged without pictures: their tags go stale
            if fault:
                self.transport.send(self.topics.device("DDEATH", roi), self.session.ddeath)
            else:
                self.transport.send(self.topics.device("DBIRTH", roi), functools.partial(self.session.dbirth, roi))

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        fps = snapshot.figures.get("fps")
        values: list[tuple[str, Value]] = []
        with self._lock:
            if isinstance(fps, (int, float)):
                fps = round(float(fps), 2)
                self._view = replace(self._view, fps=fps)
                if self._last_fps is None or abs(fps - self._last_fps) >= self.options.fps_deadband:
                    values.append((Node.FPS.name, fps))
                    self._last_fps = fps
            belt = snapshot.figures.get("belt")
            speed = belt.get("speed_px_s") if isinstance(belt, dict) else None
            if isinstance(speed, (int, float)) and (self._view.belt_speed is None
                                                    or abs(speed - self._view.belt_speed) >= self.options.speed_deadband):
                self._view = replace(self._view, belt_speed=float(speed))
                values.append((Node.BELT_SPEED.name, float(speed)))
            if snapshot.clock_synced != self._view.clock_synced:
                self._view = replace(self._view, clock_synced=snapshot.clock_synced)
                values.append((Node.CLOCK_SYNCED.name, snapshot.clock_synced))
        if values:
            self._send_data(None, values, snapshot.wall)

    def link_status(self) -> LinkStatus:
        s = self.transport.status()
        return LinkStatus(s.connected, s.last_error, s.pending, s.dropped, s.durable, s.not_sent)

    def close(self) -> None:
        """The transport's farewell is the NDEATH: every tag of the node and its devices goes stale."""
        self.transport.stop()

    # --- FrameObserver -------------------------------------------------------------------------------

    def on_frame(self, frame: object, result: Any, state: object) -> None:
        """Report a smoothed probability that moved past the deadband (at most once a second per ROI)."""
        now = self._clock()
        for roi, probability in result.smoothed.items():
            last = self._last_probability.get(roi)
            if last is not None and (abs(probability - last[0]) < self.options.probability_deadband
                                     or now - last[1] < self.options.min_interval_s):
                continue
            self._last_probability[roi] = (probability, now)
            with self._lock:
                self._view = self._view.with_device(roi, probability=float(probability))
            if self._view.device(roi).alive:
                self._send_data(roi, [(m.PROBABILITY, round(float(probability), 4))], self._wall())

    # --- snapshots -----------------------------------------------------------------------------------

    def snapshot_taken(self, snapshot: Snapshot, reference: str) -> None:
        """A snapshot of a ROI was published at ``reference``: it becomes the ROI's Snapshot/Reference."""
        if snapshot.roi is None or snapshot.roi not in self.catalogue.rois:
            return
        with self._lock:
            self._view = self._view.with_device(snapshot.roi, snapshot=reference)
        self._send_data(snapshot.roi, [(m.SNAPSHOT, reference)], self._wall())

    # --- outgoing ------------------------------------------------------------------------------------

    def _store(self, device: str | None, values: Sequence[tuple[str, Value]], wall: float) -> None:
        topic = self.topics.node("NDATA") if device is None else self.topics.device("DDATA", device)
        record = data_record(device, values, _ms(wall))
        self.transport.send_event(topic, lambda seq, event_id, epoch: record)

    def _send_data(self, device: str | None, values: Sequence[tuple[str, Value]], wall: float) -> None:
        topic = self.topics.node("NDATA") if device is None else self.topics.device("DDATA", device)
        stamp = _ms(wall)
        self.transport.send(topic, lambda: self.session.data(device, values, stamp))

    # --- incoming (the transport's thread: never block, never raise) ---------------------------------

    def _written(self, device: str | None, payload: bytes) -> list[tuple[str, Value]]:
        if len(payload) > MAX_COMMAND_BYTES:
            log.warning("Sparkplug command of %d bytes ignored (larger than %d)", len(payload), MAX_COMMAND_BYTES)
            return []
        try:
            received = decode_command(payload)
        except PayloadError as exc:
            log.warning("Sparkplug command ignored: %s", exc)
            return []
        written = []
        for metric in received:
            name = self.catalogue.named(device, metric.name, metric.alias)
            if name is None:
                log.warning("Sparkplug command for unknown metric %s ignored", metric.name or f"alias {metric.alias}")
            else:
                written.append((name, metric.value))
        return written

    def _on_ncmd(self, payload: bytes) -> None:
        for name, value in self._written(None, payload):
            if name == Node.REBIRTH.name and value is True:
                log.info("Sparkplug rebirth requested by a host")
                self.transport.rebirth()
            else:
                log.warning("Sparkplug NCMD writes %s = %r: not a writable metric", name, value)

    def _on_dcmd(self, roi: str, payload: bytes) -> None:
        for name, value in self._written(roi, payload):
            if name == m.DEVICE_REBIRTH and value is True:
                if self._view.device(roi).alive:
                    self.transport.send(self.topics.device("DBIRTH", roi), functools.partial(self.session.dbirth, roi))
            elif name == m.TAKE_SNAPSHOT and value is True and self.take_snapshot is not None:
                try:
                    self.take_snapshot(roi)
                except Exception as exc:
                    log.warning("Sparkplug snapshot of %s refused: %s", roi, exc)
            elif name == m.ALARM_ACKNOWLEDGE and isinstance(value, str) and self.acknowledge is not None:
                operator = value.strip()[:64] or "sparkplug host"
                self.acknowledge(roi, operator).add_done_callback(functools.partial(self._acknowledged, roi))
            else:
                log.warning("Sparkplug DCMD writes %s = %r on %s: not a writable metric or value", name, value, roi)

    @staticmethod
    def _acknowledged(roi: str, future: Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.warning("Sparkplug acknowledge of %s refused: %s", roi, error)

    def _on_state(self, payload: bytes) -> None:
        assert self.host is not None
        change = self.host.state_message(payload)
        if change == HostChange.ONLINE:
            log.info("Sparkplug primary host %s is online", self.host.host_id)
        elif change == HostChange.OFFLINE:
            log.warning("Sparkplug primary host %s went offline: data is held until it is back", self.host.host_id)
            if self.transport.ready:
                self.transport.restart_session(f"primary host {self.host.host_id} went offline")


def build_sparkplug_publisher(config: EdgeConfig, plain: MqttSettings, state_dir: Path, model_sha256: str,
                              runtime: str) -> SparkplugPublisher:
    """The Sparkplug publisher for ``config`` (``sparkplug.enabled``): its own connection (client id
    ``<client id>-spb``, QoS 0, the NDEATH as will), its own outbox file and ``bdSeq`` file."""
    sp = config.sparkplug
    options = SparkplugOptions(config.sparkplug_group_id, config.sparkplug_edge_node_id, sp.primary_host_id,
                               sp.probability_deadband, sp.min_interval_s)
    topics = SparkplugTopics(options.group_id, options.edge_node_id)
    settings = dataclasses.replace(plain, client_id=config.sparkplug_client_id, will_topic=topics.node("NDEATH"), will_payload="",
                                   qos=0)
    outbox = Outbox(Path(sp.outbox_path) if sp.outbox_path else state_dir / "sparkplug-outbox.sqlite", config.outbox.max_messages)
    view = NodeView(status="unknown", health="ok", model_sha256=model_sha256, runtime=runtime, version=__version__,
                    site=config.device.site, line=config.device.line, clock_synced=clock_synced())
    return SparkplugPublisher(options, view, [roi.name for roi in config.rois], settings, outbox,
                              BdSeqFile(state_dir / "sparkplug-bdseq"))
