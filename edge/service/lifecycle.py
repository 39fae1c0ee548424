"""Start-up: signal handling, where state lives, and assembling the daemon from a validated config."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

from edge.alarms import Alarm
from edge.alarms.store import AlarmStore
from edge.commands import CommandRouter, register_device_commands
from edge.config import EdgeConfig
from edge.daemon import Daemon, DaemonParts, FrameObserver
from edge.errors import ConfigError
from edge.evidence import Capture, Dataset, EvidenceKeeper, EvidenceRecorder, Records
from edge.evidence.snapshots import SnapshotReady
from edge.inference import load_runtime
from edge.messages import OFFLINE, DeviceIdentity, Topics
from edge.modelstore.service import attach_models, open_models
from edge.modelstore.shadow import ShadowObserver
from edge.mqtt import MqttSettings, MqttTransport
from edge.mqtt.tls import build_tls_context
from edge.outbox import Outbox
from edge.pipeline import FrameClassifier
from edge.publishing import Publisher, Publishers
from edge.publishing.plain import PlainJsonPublisher
from edge.secrets import Secrets, load_secrets
from edge.service.notify import Notifier
from edge.snapshots import SnapshotTaker
from edge.sources import open_source

log = logging.getLogger(__name__)


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def state_dir(config: EdgeConfig, environ: Mapping[str, str] = os.environ) -> Path:
    """``service.state_dir``, else systemd's $STATE_DIRECTORY (StateDirectory=), else ./state."""
    return Path(config.service.state_dir or environ.get("STATE_DIRECTORY", "").split(":")[0] or "state")


def outbox_path(config: EdgeConfig, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(config.outbox.path) if config.outbox.path else state_dir(config, environ) / "outbox.sqlite"


def mqtt_settings(config: EdgeConfig, secrets: Secrets, topics: Topics) -> MqttSettings:
    m = config.mqtt
    return MqttSettings(
        host=m.host, port=m.port, client_id=config.client_id, will_topic=topics.status, will_payload=OFFLINE,
        protocol=m.protocol, keepalive_s=m.keepalive_s, username=m.username, password=secrets.password,
        tls=build_tls_context(m.tls, secrets.tls_key_path), reconnect_min_s=m.reconnect_min_s,
        reconnect_max_s=m.reconnect_max_s, auth_retry_s=m.auth_retry_s, connect_timeout_s=m.connect_timeout_s,
        stable_after_s=m.stable_after_s, retained_expiry_s=config.state_expiry_s, max_packet_bytes=m.max_packet_bytes,
    )


def evidence_dir(config: EdgeConfig, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(config.evidence.path) if config.evidence.path else state_dir(config, environ) / "evidence"


def capture_dir(config: EdgeConfig, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(config.capture.path) if config.capture.path else state_dir(config, environ) / "captures"


def console_users_text(config: EdgeConfig, environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(text, where) of the console users file, or None when the console has no users (loopback only)."""
    c = config.console
    if c.users_file is not None:
        where = c.users_file
    elif c.users_credential is not None:
        where = str(Path(environ.get("CREDENTIALS_DIRECTORY", "")) / c.users_credential)
    else:
        return None
    try:
        return Path(where).read_text(encoding="utf-8"), where
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"console users file {where}: cannot read ({exc})"]) from None


def build_daemon(config: EdgeConfig, stop: threading.Event | None = None, config_path: Path | None = None,
                 announce_console: Callable[[str], None] | None = None) -> Daemon:
    """Load secrets and the model, open the outbox, and wire source, publishers, commands, evidence, console and notifier.

    ``config_path`` is the file the config came from: the console saves lane edits there.
    ``announce_console`` is called with the console's URL once it listens (the demo prints it).
    """
    secrets = load_secrets(config)
    runtime = load_runtime(config.model.runtime)
    models = open_models(config, state_dir(config), runtime)  # the model store's active model, else model.path
    classifier = models.running.classifier
    topics = Topics(config.topic_prefix)
    settings = mqtt_settings(config, secrets, topics)
    transport = MqttTransport(settings, Outbox(outbox_path(config), config.outbox.max_messages))
    identity = DeviceIdentity(config.device.site, config.device.line, config.device.name)
    router = CommandRouter() if config.mqtt.commands else None
    plain = PlainJsonPublisher(identity, topics, transport, router)
    snapshots = SnapshotTaker({roi.name: (roi.box[0], roi.box[1], roi.box[2], roi.box[3]) for roi in config.rois})
    snapshots.add_sink(plain.publish_snapshot)
    publishers: list[Publisher] = [plain]
    shadow = ShadowObserver()
    observers: list[FrameObserver] = [snapshots, shadow]
    rebirths = {"plain": plain.republish}
    sparkplug = None
    if config.sparkplug.enabled:
        # Imported only when enabled: protobuf's runtime costs about 13 MB of resident memory.
        from edge.sparkplug.publisher import build_sparkplug_publisher

        sparkplug = build_sparkplug_publisher(config, settings, state_dir(config), str(classifier.card.tflite_sha256),
                                              f"{classifier.runtime.name} {classifier.runtime.version}")
        publishers.append(sparkplug)
        observers.append(sparkplug)
        rebirths["sparkplug"] = sparkplug.transport.rebirth
    # Always a Publishers: the console (when enabled) joins it in attach_features.
    parts = DaemonParts(config, classifier, open_source(config.source), Publishers(publishers), Notifier(),
                        observers=observers, alarm_store=AlarmStore(state_dir(config) / "alarms.json"))
    daemon = Daemon(parts, stop)
    shadow.active_card = lambda: daemon.pipeline.classifier.card

    def acknowledge(roi: str, by: str) -> Future[Alarm]:
        return daemon.call_soon(lambda: daemon.acknowledge(roi, by))

    if router is not None:
        register_device_commands(router, acknowledge=acknowledge, take_snapshot=snapshots.take, snapshot_topic=topics.snapshot,
                                 rebirths=rebirths)
    manager = attach_models(daemon, models, config, runtime, shadow, router)
    if sparkplug is not None:
        spb = sparkplug
        spb.acknowledge, spb.take_snapshot = acknowledge, snapshots.take
        snapshots.add_sink(lambda snapshot: spb.snapshot_taken(snapshot, topics.snapshot(snapshot.snapshot_id)))

    def send_snapshot(ready: SnapshotReady) -> None:
        """evidence.mqtt_snapshot: the change's frame on <prefix>/snapshot/<id>, as the snapshot command sends one."""
        transport.send(topics.snapshot(ready.record), ready.jpeg)

    def rois_changed(new: EdgeConfig) -> None:
        snapshots.rois = {roi.name: (roi.box[0], roi.box[1], roi.box[2], roi.box[3]) for roi in new.rois}
        manager.set_rois(new)

    attach_features(daemon, identity, config_path=config_path, announce_console=announce_console,
                    classifier_for=manager.running_model_for, send_snapshot=send_snapshot, link=plain.link_status,
                    rois_changed=rois_changed, exclusive=manager.exclusive)
    return daemon


def attach_features(daemon: Daemon, identity: DeviceIdentity, *, config_path: Path | None = None,
                    announce_console: Callable[[str], None] | None = None,
                    classifier_for: Callable[[int], FrameClassifier] | None = None,
                    send_snapshot: Callable[[SnapshotReady], None] | None = None,
                    link: Callable[[], Any] | None = None,
                    rois_changed: Callable[[EdgeConfig], None] | None = None,
                    exclusive: Callable[[Callable[[], None]], None] | None = None) -> Any:
    """Register the evidence keeper (snapshots, capture) and, when enabled, the console on ``daemon``.

    The one place these features are wired (``build_daemon`` calls it; tests call it on a daemon built
    from the shipped fakes). ``daemon.parts.publisher`` must be a :class:`Publishers` (the console joins it).
    ``rois_changed`` is told the running config after the console's lane editor changed the ROIs.
    ``exclusive`` runs a lane change where no model switch can interleave (the model manager's thread).
    Returns the console, or None.
    """
    config, parts = daemon.config, daemon.parts
    recorder = None
    if config.evidence.enabled:
        recorder = EvidenceRecorder(config.evidence, Records(evidence_dir(config), int(config.evidence.max_mb * 1e6)),
                                    send_snapshot if config.evidence.mqtt_snapshot else None)
    capture = Capture(config.capture, Records(capture_dir(config), int(config.capture.max_mb * 1e6)), lambda: daemon.pipeline.rois,
                      float(parts.classifier.card.threshold), daemon.model_sha256)
    keeper = EvidenceKeeper(recorder, capture)
    parts.evidence = keeper
    parts.observers.append(keeper)
    if not config.console.enabled:
        return None
    if not isinstance(parts.publisher, Publishers):
        raise TypeError("the console joins the daemon's Publishers")
    console = _console(daemon, config_path, identity, classifier_for, recorder, capture, announce_console, link, rois_changed,
                       exclusive)
    parts.observers.append(console)
    parts.publisher.publishers.append(console)
    return console


def _console(daemon: Daemon, config_path: Path | None, identity: DeviceIdentity,
             classifier_for: Callable[[int], FrameClassifier] | None, recorder: EvidenceRecorder | None, capture: Capture,
             announce: Callable[[str], None] | None, link: Callable[[], Any] | None,
             rois_changed: Callable[[EdgeConfig], None] | None,
             exclusive: Callable[[Callable[[], None]], None] | None) -> Any:
    """The console (imported only when enabled: its HTTP server is not loaded otherwise)."""
    try:
        from edge.console.publisher import Console
        from edge.console.server import ConsoleParts
    except ImportError as exc:
        raise ConfigError([f"console.enabled: the console's HTTP server is not installed ({exc.name} is missing): "
                           "pip install 'tornado>=6.3,<7' into the daemon's environment"]) from None
    from edge.console.auth import Users, parse_users
    from edge.console.live import LiveState
    from edge.console.rois import RoiEditor

    config = daemon.config
    users_text = console_users_text(config)
    users = Users(parse_users(*users_text)) if users_text is not None else None

    def change(new: EdgeConfig) -> None:
        """Build a classifier for a new ROI count here, then swap it in on the frame loop."""
        recount = classifier_for is not None and len(new.rois) != len(daemon.config.rois)
        classifier = classifier_for(len(new.rois)) if recount and classifier_for is not None else None
        daemon.call_soon(lambda: daemon.reconfigure(new, classifier)).result(timeout=10.0)
        if rois_changed is not None:
            rois_changed(new)

    def apply(new: EdgeConfig) -> None:
        """On the console's thread; with a model manager, on its thread so that no model switch interleaves."""
        if exclusive is None:
            change(new)
        else:
            exclusive(lambda: change(new))

    editor = RoiEditor(config_path, lambda: daemon.config, apply)
    parts = ConsoleParts(config.console, LiveState(lambda: daemon.pipeline.rois),
                         {"site": identity.site, "line": identity.line, "name": identity.device}, lambda: daemon.model_sha256,
                         lambda: daemon.runtime_label, lambda: daemon.config, editor, link,
                         recorder.records if recorder is not None else None, capture, Dataset(capture.records), users)
    return Console(parts, announce)
