"""A throwaway MQTT broker on loopback for the demo and tests: Mosquitto if installed, else the mini broker."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edge.errors import EdgeError
from edge.minibroker import MiniBroker

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if Path(p).exists()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class LocalBroker:
    """Starts a broker on 127.0.0.1 and a free port; ``kind`` says which one."""

    def __init__(self, prefer_mosquitto: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.kind = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._mini: MiniBroker | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="conveyor-broker-")
        self._prefer_mosquitto = prefer_mosquitto

    def start(self) -> LocalBroker:
        binary = find_mosquitto() if self._prefer_mosquitto else None
        if binary:
            self.port = free_port()
            conf = Path(self._dir.name) / "mosquitto.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            self._proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not wait_for_port(self.host, self.port, 5.0):
                self.stop()
                raise EdgeError(f"mosquitto did not start listening on {self.host}:{self.port}")
            self.kind = f"mosquitto ({binary})"
        else:
            self._mini = MiniBroker(self.host, 0)
            self.port = self._mini.start()
            self.kind = "built-in mini broker (install mosquitto for the real one)"
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if self._mini is not None:
            self._mini.stop()
            self._mini = None
        self._dir.cleanup()
