"""systemd integration: READY after the first inference, WATCHDOG only from a live loop, STOPPING on exit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, write_config

from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.fakes import FakeClassifier
from edge.publishing.recording import RecordingPublisher
from edge.service.notify import Notifier
from edge.sources.base import Frame


class NotifySocket:
    """What systemd listens on: a datagram socket collecting notifications."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def receive(self, timeout: float) -> str | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append((time.monotonic(), data))
        return data

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(max(0.01, deadline - time.monotonic()))
            if message is not None and text in message:
                return
        raise AssertionError(f"no {text!r} within {timeout} s; got {self.messages[-5:]}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.sock.close()


def test_notifier_does_nothing_outside_systemd() -> None:
    """Without NOTIFY_SOCKET every call is a no-op."""
    notifier = Notifier(env={})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.notify("READY=1") is False


def test_abstract_socket_names_are_supported(tmp_path: Path) -> None:
    """systemd may pass '@name' for an abstract socket."""
    name = f"conveyor-test-{time.monotonic_ns()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(5)
    Notifier(env={"NOTIFY_SOCKET": "@" + name}).ready()
    assert receiver.recv(100) == b"READY=1"
    receiver.close()


@pytest.mark.broker
def test_daemon_sends_ready_watchdog_and_stopping(tmp_path: Path, mosquitto: Mosquitto, notify_socket: NotifySocket) -> None:
    """Under systemd (NOTIFY_SOCKET + WATCHDOG_USEC) the real daemon says READY, pings, then STOPPING."""
    config = daemon_config(tmp_path, mosquitto, source={"realtime": True, "duration_s": 600, "drops": []})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log",
                           env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"})
    try:
        notify_socket.wait_for("READY=1", 30)
        notify_socket.wait_for("WATCHDOG=1", 5)
        notify_socket.wait_for("WATCHDOG=1", 5)
        assert daemon.terminate() == 0
        notify_socket.wait_for("STOPPING=1", 5)
    finally:
        daemon.close()


class StallingSource:
    """A camera whose read() blocks forever after a number of frames, like a hung driver."""

    name = "stalling"

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.seq = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.seq >= self.frames:
            self.stalled.set()
            self.release.wait()  # blocks until the test ends
            return None
        self.seq += 1
        time.sleep(0.01)
        rng = np.random.default_rng(self.seq)
        return Frame(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), self.seq, time.monotonic(), time.time())

    def close(self) -> None:
        self.release.set()


def test_a_stalled_frame_loop_stops_the_watchdog_pings(tmp_path: Path, notify_socket: NotifySocket) -> None:
    """Pings flow while frames flow; once the loop hangs in a read, no more pings, so systemd would restart us."""
    config = parse_config({}, check_files=False)
    notifier = Notifier(env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"})
    source = StallingSource(frames=60)
    daemon = Daemon(DaemonParts(config, FakeClassifier.constant(0.1), source, RecordingPublisher(), notifier))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        notify_socket.wait_for("READY=1", 30)
        notify_socket.wait_for("WATCHDOG=1", 5)
        assert source.stalled.wait(30)
        # Drain what was sent before the stall, then: silence for many watchdog intervals (50 ms each).
        while notify_socket.receive(0.06) is not None:
            pass
        assert notify_socket.receive(1.0) is None
        assert thread.is_alive()
    finally:
        daemon.stop.set()
        source.release.set()
        thread.join(10)


def test_a_full_notify_socket_never_blocks_the_sender(tmp_path: Path) -> None:
    """If nobody reads the notify socket, notifications are dropped instead of blocking the frame loop."""
    receiver = NotifySocket(tmp_path / "full.sock")
    notifier = Notifier(env={"NOTIFY_SOCKET": str(receiver.path)})
    results = [notifier.notify(f"STATUS={i}") for i in range(5000)]
    assert results[0] is True and results[-1] is False  # the queue filled up and the call returned anyway
    receiver.sock.close()
