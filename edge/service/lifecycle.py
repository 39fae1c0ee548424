"""Start-up: signal handling, where state lives, and assembling the daemon from a validated config."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from types import FrameType

from edge.alarms import Alarm
from edge.alarms.store import AlarmStore
from edge.commands import CommandRouter, register_device_commands
from edge.config import EdgeConfig
from edge.daemon import Daemon, DaemonParts, FrameObserver
from edge.inference import load_runtime
from edge.messages import OFFLINE, DeviceIdentity, Topics
from edge.modelstore.service import attach_models, open_models
from edge.modelstore.shadow import ShadowObserver
from edge.mqtt import MqttSettings, MqttTransport
from edge.mqtt.tls import build_tls_context
from edge.outbox import Outbox
from edge.publishing import Publisher, Publishers
from edge.publishing.plain import PlainJsonPublisher
from edge.secrets import Secrets, load_secrets
from edge.service.notify import Notifier
from edge.snapshots import SnapshotTaker
from edge.sources import open_source
from edge.sparkplug.publisher import build_sparkplug_publisher

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


def build_daemon(config: EdgeConfig, stop: threading.Event | None = None) -> Daemon:
    """Load secrets and the model, open the outbox, and wire source, publisher and notifier."""
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
        sparkplug = build_sparkplug_publisher(config, settings, state_dir(config), str(classifier.card.tflite_sha256),
                                              f"{classifier.runtime.name} {classifier.runtime.version}")
        publishers.append(sparkplug)
        observers.append(sparkplug)
        rebirths["sparkplug"] = sparkplug.transport.rebirth
    parts = DaemonParts(config, classifier, open_source(config.source), Publishers(publishers) if sparkplug else plain, Notifier(),
                        observers=observers, alarm_store=AlarmStore(state_dir(config) / "alarms.json"))
    daemon = Daemon(parts, stop)
    shadow.active_card = lambda: daemon.pipeline.classifier.card

    def acknowledge(roi: str, by: str) -> Future[Alarm]:
        return daemon.call_soon(lambda: daemon.acknowledge(roi, by))

    if router is not None:
        register_device_commands(router, acknowledge=acknowledge, take_snapshot=snapshots.take, snapshot_topic=topics.snapshot,
                                 rebirths=rebirths)
    attach_models(daemon, models, config, runtime, shadow, router)
    if sparkplug is not None:
        spb = sparkplug
        spb.acknowledge, spb.take_snapshot = acknowledge, snapshots.take
        snapshots.add_sink(lambda snapshot: spb.snapshot_taken(snapshot, topics.snapshot(snapshot.snapshot_id)))
    return daemon
