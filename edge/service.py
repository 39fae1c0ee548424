"""Process lifecycle: logging set-up, signal handling, and assembling the daemon from a config."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from edge.config import EdgeConfig
from edge.daemon import Daemon, Parts
from edge.inference import load_runtime
from edge.messages import Topics
from edge.model_choice import choose_classifier
from edge.mqtt import MqttLink
from edge.notify import Notifier
from edge.outbox import Outbox
from edge.secrets import load_secrets
from edge.sources import open_source


def under_journald() -> bool:
    """True when stderr is connected to the journal (it adds its own timestamps)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald() else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr, force=True)
    logging.getLogger("paho").setLevel(logging.WARNING)


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def build_daemon(config: EdgeConfig, stop: threading.Event | None = None) -> Daemon:
    """Load secrets, model, outbox, MQTT link and source from a validated config."""
    secrets = load_secrets(config)
    runtime = load_runtime(config.model.runtime)
    classifier = choose_classifier(Path(config.model.path), runtime, config.model.num_threads, len(config.rois), config.model.form).classifier
    outbox = Outbox(config.outbox_path(), config.outbox.max_messages)
    link = MqttLink(config, secrets, outbox, Topics(config.topic_prefix))
    parts = Parts(config, classifier, open_source(config.source), outbox, link, Notifier())
    return Daemon(parts, stop)
