"""Run the real ``edge-daemon`` as a subprocess with a YAML config written by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from helpers.broker import Mosquitto

DROPS = [{"start_s": 3.0, "duration_s": 4.0}, {"start_s": 11.0, "duration_s": 4.0}, {"start_s": 19.0, "duration_s": 4.0}]


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def daemon_config(tmp: Path, broker: Mosquitto | None, **override: Any) -> dict[str, Any]:
    """A fast config: synthetic stream in stream time (not paced), small frames, three drops."""
    runtime = os.environ.get("CONVEYOR_TEST_RUNTIME", "auto")
    base: dict[str, Any] = {
        "device": {"site": "s1", "line": "l1", "name": "dev1"},
        "model": {"runtime": runtime},
        "source": {"type": "synthetic", "fps": 20, "width": 160, "height": 120, "realtime": False,
                   "duration_s": 27.0, "drops": DROPS},
        "mqtt": {"host": "127.0.0.1", "port": broker.port if broker else 1, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0},
        "telemetry": {"interval_s": 1},
        "service": {"state_dir": str(tmp / "state"), "log_level": "info"},
    }
    return merge(base, override)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


class DaemonProcess:
    def __init__(self, config_path: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=full_env)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.flush()

    def terminate(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            self.kill()
        elif not self._log.closed:
            self._log.close()


def run_to_end(config_path: Path, log_path: Path, timeout: float) -> str:
    """Run the daemon until it ends by itself (a finite source); it must exit 0. Returns its log."""
    daemon = DaemonProcess(config_path, log_path)
    try:
        assert daemon.wait(timeout) == 0, daemon.log()
        return daemon.log()
    finally:
        daemon.close()


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
