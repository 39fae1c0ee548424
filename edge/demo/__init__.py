"""``edge-daemon demo``: the whole product on one machine, in well under a minute.

Starts Mosquitto on loopback (or uses ``--broker``), runs the daemon with the bundled int8 model
on the simulated conveyor with scripted drops in flow (at 3-7 s and 11-15 s, then every 16 s),
serves the commissioning console on loopback (it prints ``console: http://127.0.0.1:PORT/``),
and prints every message a subscriber to ``plant/#`` receives, as ``mosquitto_sub -v`` would,
then a short summary. In a terminal it runs until Ctrl-C; otherwise for ``--seconds`` (120).

Demo tooling, not the daemon: ``broker.py`` here is also the test suite's broker launcher.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_config
from edge.demo.broker import Mosquitto, free_port
from edge.errors import EdgeError
from edge.service.lifecycle import build_daemon, install_signal_handlers
from edge.service.logs import setup_logging

DEMO_PREFIX = "plant/demo-site/line-1/edge-demo"
CONSOLE_PORT = 8080  # the console's port when it is free, else any free one
UNTIL_STOPPED_S = 3600.0  # drops are scripted for the first hour of a demo that runs until Ctrl-C
_STDOUT = threading.Lock()


def say(line: str) -> None:
    """One whole line to stdout. The subscriber's thread and the console's announce both print: print() writes
    the text and its newline separately, so two threads could splice their lines into one (seen in CI)."""
    with _STDOUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


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
        say(f"{time.monotonic() - self._t0:6.2f}s  {message.topic}{retained}  {payload}")
        if message.topic.endswith("/status") and payload == "offline":
            self.offline.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def demo_drops(seconds: float) -> list[dict[str, float]]:
    """Drops in flow at 3-7 s and 11-15 s (what the short demo shows), then one every 16 s."""
    starts = [3.0, 11.0]
    while starts[-1] + 16.0 < seconds:
        starts.append(starts[-1] + 16.0)
    return [{"start_s": start, "duration_s": 4.0} for start in starts]


def console_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the console's server does: a recent TIME_WAIT is no obstacle
        try:
            s.bind((host, CONSOLE_PORT))
            return CONSOLE_PORT
        except OSError:
            return free_port()


def demo_config(host: str, port: int, seconds: float | None, runtime: str, state_dir: str,
                console: int | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "device": {"site": "demo-site", "line": "line-1", "name": "edge-demo"},
        "model": {"runtime": runtime},
        "source": {"type": "synthetic", "fps": 15, "seed": 3, "duration_s": seconds, "realtime": True,
                   "drops": demo_drops(seconds if seconds is not None else UNTIL_STOPPED_S)},
        "mqtt": {"host": host, "port": port},
        "telemetry": {"interval_s": 5},
        "service": {"state_dir": state_dir, "log_level": "warning"},
    }
    if console is not None:
        config["console"] = {"enabled": True, "listen": f"127.0.0.1:{console}"}
    return config


def _summary(messages: list[tuple[float, str, str, bool]]) -> list[str]:
    lines = []
    for at, topic, payload, _ in messages:
        if topic.endswith("/event"):
            event = json.loads(payload)
            if event.get("type") == "level":
                lines.append(f"  {at:6.2f}s  event #{event['seq']}: {event['roi']} {event['previous']} -> {event['level']}"
                             f" (p={event['probability']:.2f})")
    return lines


def run_demo(broker: str | None, seconds: float | None, runtime: str, console: bool = True) -> int:
    """Run the demo; returns the exit code. ``seconds`` None: until Ctrl-C in a terminal, else 120."""
    if seconds is None and not sys.stdout.isatty():
        seconds = 120.0
    setup_logging("warning")
    local = None
    if broker is None:
        try:
            local = Mosquitto().start()
        except EdgeError as exc:
            print(f"edge-daemon: {exc}", file=sys.stderr)
            return 4
        host, port = local.host, local.port
        say(f"# broker: mosquitto ({local.binary}) on {host}:{port}")
    else:
        host, _, port_text = broker.rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            print(f"edge-daemon: --broker: expected HOST:PORT, got {broker!r}", file=sys.stderr)
            return 2
        port = int(port_text)
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as state_dir:
        # A real file, so lanes drawn in the console are saved the way a device saves them.
        config_path = Path(state_dir) / "config.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(host, port, seconds, runtime, state_dir,
                                                          console_port() if console else None), sort_keys=False))
        config = load_config(config_path)
        try:
            subscriber = PrintingSubscriber(host, port)
        except OSError as exc:
            print(f"edge-daemon: cannot reach the broker at {host}:{port} ({exc})", file=sys.stderr)
            if local:
                local.close()
            return 4
        subscriber.subscribed.wait(5)
        length = f"{seconds:.0f} s" if seconds is not None else "until Ctrl-C"
        say(f"# daemon: bundled int8 model, simulated camera at 15 fps, drops in flow at 3-7 s and 11-15 s"
            f"{' then every 16 s' if seconds is None or seconds > 27 else ''}; subscriber on plant/# prints below ({length})")
        stop = threading.Event()
        install_signal_handlers(stop)

        def announce(url: str) -> None:
            say(f"console: {url}")

        daemon = build_daemon(config, stop, config_path=config_path, announce_console=announce)
        code = daemon.run()
        subscriber.offline.wait(5)
        subscriber.close()
    if local:
        local.close()
    say("# summary of level events:")
    for line in _summary(subscriber.messages) or ["  (none)"]:
        say(line)
    say(f"# {len(subscriber.messages)} messages received; the device is now offline. Done.")
    logging.shutdown()
    return code
