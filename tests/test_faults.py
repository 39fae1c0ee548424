"""Faults the daemon survives by itself: camera failures, frozen or dark pictures, bad frames, broker trouble."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.broker import Mosquitto, free_port_below_ephemeral
from helpers.daemon import DaemonProcess, daemon_config, wait_until, write_config
from helpers.subscriber import Subscriber, validate
from PIL import Image

from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.errors import SourceError
from edge.fakes import FakeClassifier
from edge.publishing.recording import RecordingPublisher
from edge.sources import open_source
from edge.sources.base import Frame
from edge.state import Health, Level


def noisy(seq: int, size: tuple[int, int] = (120, 160), level: int = 128, sigma: float = 30) -> np.ndarray:
    rng = np.random.default_rng(seq)
    return np.clip(rng.normal(level, sigma, (*size, 3)), 0, 255).astype(np.uint8)


class ScriptedCamera:
    """A stand-in for camera hardware: fails to open, fails reads, freezes, or sends junk, as scripted."""

    name = "scripted"

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)  # per call: "open-fail", "ok", "read-fail", "frozen", "bad-*"
        self.opens = 0
        self.seq = 0
        self.frozen_pixels = noisy(999)

    def _next(self) -> str:
        return self.script.pop(0) if self.script else "end"

    def open(self) -> None:
        self.opens += 1
        if self.script and self.script[0] == "open-fail":
            self.script.pop(0)
            raise SourceError("scripted: camera not found")

    def read(self) -> Frame | None:
        step = self._next()
        self.seq += 1
        now_mono, now_wall = time.monotonic(), time.time()
        if step == "end":
            return None
        if step == "read-fail":
            raise SourceError("scripted: read timed out")
        if step == "frozen":
            time.sleep(0.01)
            return Frame(self.frozen_pixels, self.seq, now_mono, now_wall)
        bad: dict[str, Any] = {"bad-shape": np.zeros((10, 10), np.uint8), "bad-dtype": np.zeros((120, 160, 3), np.float32),
                               "bad-size": np.zeros((4000, 9000, 3), np.uint8)[:9000, :9000], "bad-type": "not an array",
                               "bad-channels": np.zeros((120, 160, 4), np.uint8)}
        if step in bad:
            return Frame(bad[step], self.seq, now_mono, now_wall)  # type: ignore[arg-type]
        return Frame(noisy(self.seq), self.seq, now_mono, now_wall)

    def close(self) -> None:
        pass


def run_daemon(tmp_path: Path, source: Any, **config: Any) -> tuple[Daemon, RecordingPublisher]:
    """Run the real daemon loop in this thread until the source ends, with the shipped fakes for the
    model and the publishing boundary; return it and what it reported."""
    base = {"health": {"reopen_min_s": 0.02, "reopen_max_s": 0.1, "frozen_after_s": 0.3, "degraded_after_s": 0.3}}
    for key, value in config.items():
        base[key] = {**base.get(key, {}), **value}
    cfg = parse_config(base, check_files=False)
    publisher = RecordingPublisher()
    daemon = Daemon(DaemonParts(cfg, FakeClassifier.constant(0.05), source, publisher))
    assert daemon.run() == 0
    assert publisher.started and publisher.closed
    return daemon, publisher


def health_changes(reported: RecordingPublisher) -> list[tuple[str, str]]:
    return [(str(c.previous), str(c.health)) for c in reported.health_changes]


def test_camera_open_failures_and_read_errors_recover_without_a_restart(tmp_path: Path) -> None:
    """Two failed opens, frames, a read error, frames: camera_fault -> ok twice, and the loop carries on."""
    camera = ScriptedCamera(["open-fail", "open-fail"] + ["ok"] * 10 + ["read-fail"] + ["ok"] * 10)
    daemon, reported = run_daemon(tmp_path, camera)
    assert camera.opens == 4  # start, two retries that... the third succeeds; then a reopen after the read error
    assert daemon.stats.frames == 20
    assert health_changes(reported) == [("ok", "camera_fault"), ("camera_fault", "ok"), ("ok", "camera_fault"), ("camera_fault", "ok")]
    assert "camera not found" in reported.health_changes[0].reason
    # Blind means unknown, never the last good level; the first verdict after start is not an event.
    assert reported.transitions("belt") == [("ok", "unknown"), ("unknown", "ok")]
    assert [s.level("belt") for s in reported.states][-1] == Level.OK


def test_a_frozen_camera_is_a_fault_and_is_reopened(tmp_path: Path) -> None:
    """Identical frames for frozen_after_s: camera_fault with the reason, reopen, then ok when frames move again."""
    camera = ScriptedCamera(["ok"] * 5 + ["frozen"] * 60 + ["ok"] * 10)
    _, reported = run_daemon(tmp_path, camera)
    changes = health_changes(reported)
    assert changes[0] == ("ok", "camera_fault") and changes[-1] == ("camera_fault", "ok")
    assert "frozen" in reported.health_changes[0].reason
    assert camera.opens >= 2


def test_a_dark_stream_is_reported_degraded_and_raises_no_alerts(tmp_path: Path) -> None:
    """Lights off over the belt (real dark JPEGs): 'degraded' instead of alerts from a blind model."""
    folder = tmp_path / "dark"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(noisy(i, level=4, sigma=2)).save(folder / f"{i}.jpg")
    cfg = parse_config({"source": {"type": "images", "folder": str(folder), "fps": 20, "loop": True}}, check_files=False)
    source = open_source(cfg.source)

    class Limited:
        name = "images"

        def __init__(self) -> None:
            self.n = 0

        def open(self) -> None:
            source.open()

        def read(self) -> Frame | None:
            self.n += 1
            return source.read() if self.n <= 30 else None

        def close(self) -> None:
            source.close()

    daemon, reported = run_daemon(tmp_path, Limited())
    assert health_changes(reported) == [("ok", "degraded")]
    assert "too dark" in reported.health_changes[0].reason
    assert reported.transitions("belt") == [("ok", "unknown")]
    assert "too dark" in reported.level_changes[0].reason
    assert daemon.state.health == Health.DEGRADED and daemon.state.level("belt") == Level.UNKNOWN


def test_frames_of_the_wrong_shape_dtype_or_size_are_counted_and_skipped(tmp_path: Path) -> None:
    """Junk frames never crash the loop; they are counted in bad_frames and telemetry."""
    junk = ["bad-shape", "bad-dtype", "bad-size", "bad-type", "bad-channels"]
    camera = ScriptedCamera(["ok"] * 3 + junk + ["ok"] * 3 + junk)
    daemon, _ = run_daemon(tmp_path, camera)
    assert daemon.stats.bad_frames == 10 and daemon.stats.frames == 6


@pytest.mark.broker
def test_broker_down_at_start_then_up_delivers_what_was_stored(tmp_path: Path) -> None:
    """No broker at start-up: the daemon still watches and stores events; when the broker appears, they arrive."""
    broker = Mosquitto(tmp_path / "broker", persistent=True)
    broker.start()
    sub = Subscriber(broker.host, broker.port, "plant/+/+/+/event", client_id="scada", clean_session=False)
    broker.stop()
    device_port = free_port_below_ephemeral()
    config = daemon_config(tmp_path, broker, source={"realtime": True, "duration_s": 3600,
                                                     "drops": [{"start_s": 1.0, "duration_s": 2.0}]},
                           mqtt={"port": device_port})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    try:
        wait_until(lambda: daemon.log().count("stored") >= 4, 30, "two level changes and their alarm events stored with no broker")
        assert "cannot connect" in daemon.log()
        broker.extra = f"listener {broker.port} 127.0.0.1\nlistener {device_port} 127.0.0.1\nallow_anonymous true"
        broker.start()
        sub.wait_for(lambda ms: len(sub.events()) >= 2, timeout=30, what="stored events")
        events = sub.events()
        assert [(e["previous"], e["level"]) for e in events] == [("ok", "alert"), ("alert", "ok")]
        assert all(e["replayed"] for e in events)
        for message in sub.messages:
            validate(message)
        assert daemon.terminate() == 0
    finally:
        sub.close()
        daemon.close()
        broker.stop()


@pytest.mark.broker
def test_refused_credentials_are_logged_clearly_without_a_tight_reconnect_loop(tmp_path: Path) -> None:
    """Wrong password: one clear log line, the reason in systemd's status, and retries only every auth_retry_s."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "dev1", "right-Password-1"], check=True, timeout=30)
    passwd.chmod(0o644)
    broker = Mosquitto(tmp_path / "broker", extra=f"allow_anonymous false\npassword_file {passwd}")
    broker.start()
    secret = tmp_path / "pw"
    secret.write_text("wrong-Password-2\n")
    config = daemon_config(tmp_path, broker, source={"realtime": True, "duration_s": 3600, "drops": []},
                           mqtt={"username": "dev1", "password_file": str(secret), "auth_retry_s": 60})
    daemon = DaemonProcess(write_config(tmp_path / "c.yaml", config), tmp_path / "d.log")
    try:
        wait_until(lambda: "broker refused the connection" in daemon.log(), 30, "the refusal in the log")
        wait_until(lambda: "first inference" in daemon.log(), 30, "the daemon working anyway")
        attempts_at_refusal = broker.log.read_text().count("New connection from")
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:  # a bounded observation window: count attempts in it
            time.sleep(0.2)
        assert broker.log.read_text().count("New connection from") == attempts_at_refusal
        refusals = [line for line in daemon.log().splitlines() if "broker refused the connection" in line]
        assert len(refusals) == 1, refusals
        assert "Not authorized" in refusals[0] or "Bad user name or password" in refusals[0]
        assert daemon.alive()
        assert "wrong-Password-2" not in daemon.log() and "right-Password-1" not in daemon.log()
        assert daemon.terminate() == 0
    finally:
        daemon.close()
        broker.stop()
