"""``edge-daemon demo``: the whole product on one machine, in well under a minute.

Starts Mosquitto on loopback (or uses ``--broker``), runs the daemon with the bundled int8 model
on the simulated conveyor with two scripted drops in flow, and prints every message a
subscriber to ``plant/#`` receives, as ``mosquitto_sub -v`` would, then a short summary.

Demo tooling, not the daemon: ``broker.py`` here is also the test suite's broker launcher.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import parse_config
from edge.demo.broker import Mosquitto
from edge.errors import EdgeError
from edge.service.lifecycle import build_daemon, install_signal_handlers
from edge.service.logs import setup_logging

DEMO_PREFIX = "plant/demo-site/line-1/edge-demo"


class PrintingSubscriber:
    """Subscribes to ``plant/#`` and prints each message; remembers them for the summary."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[float, str, str, bool]] = []
        self.offline = threading.Event()
        self.subscribed = threading.Event()
        self._t0 = time.monotonic()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="demo-subscriber")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("plant/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        payload = message.payload.decode("utf-8", "replace")
        self.messages.append((time.monotonic() - self._t0, message.topic, payload, bool(message.retain)))
        retained = " (retained)" if message.retain else ""
        print(f"{time.monotonic() - self._t0:6.2f}s  {message.topic}{retained}  {payload}", flush=True)
        if message.topic.endswith("/status") and payload == "offline":
            self.offline.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def demo_config(host: str, port: int, seconds: float, runtime: str, state_dir: str) -> dict[str, Any]:
    return {
        "device": {"site": "demo-site", "line": "line-1", "name": "edge-demo"},
        "model": {"runtime": runtime},
        "source": {"type": "synthetic", "fps": 15, "seed": 3, "duration_s": seconds, "realtime": True,
                   "drops": [{"start_s": 3.0, "duration_s": 4.0}, {"start_s": 11.0, "duration_s": 4.0}]},
        "mqtt": {"host": host, "port": port},
        "telemetry": {"interval_s": 5},
        "service": {"state_dir": state_dir, "log_level": "warning"},
    }


def _summary(messages: list[tuple[float, str, str, bool]]) -> list[str]:
    lines = []
    for at, topic, payload, _ in messages:
        if topic.endswith("/event"):
            event = json.loads(payload)
            if event.get("type") == "level":
                lines.append(f"  {at:6.2f}s  event #{event['seq']}: {event['roi']} {event['previous']} -> {event['level']}"
                             f" (p={event['probability']:.2f})")
    return lines


def run_demo(broker: str | None, seconds: float, runtime: str) -> int:
    """Run the demo; returns the exit code."""
    setup_logging("warning")
    local = None
    if broker is None:
        try:
            local = Mosquitto().start()
        except EdgeError as exc:
            print(f"edge-daemon: {exc}", file=sys.stderr)
            return 4
        host, port = local.host, local.port
        print(f"# broker: mosquitto ({local.binary}) on {host}:{port}", flush=True)
    else:
        host, _, port_text = broker.rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            print(f"edge-daemon: --broker: expected HOST:PORT, got {broker!r}", file=sys.stderr)
            return 2
        port = int(port_text)
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as state_dir:
        config = parse_config(demo_config(host, port, seconds, runtime, state_dir), "demo config")
        try:
            subscriber = PrintingSubscriber(host, port)
        except OSError as exc:
            print(f"edge-daemon: cannot reach the broker at {host}:{port} ({exc})", file=sys.stderr)
            if local:
                local.close()
            return 4
        subscriber.subscribed.wait(5)
        print(f"# daemon: bundled int8 model, simulated camera at 15 fps, drops in flow at 3-7 s and 11-15 s;"
              f" subscriber on plant/# prints below ({seconds:.0f} s)", flush=True)
        stop = threading.Event()
        install_signal_handlers(stop)
        daemon = build_daemon(config, stop)
        code = daemon.run()
        subscriber.offline.wait(5)
        subscriber.close()
    if local:
        local.close()
    print("# summary of level events:")
    for line in _summary(subscriber.messages) or ["  (none)"]:
        print(line)
    print(f"# {len(subscriber.messages)} messages received; the device is now offline. Done.", flush=True)
    logging.shutdown()
    return code
