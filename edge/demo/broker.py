"""Mosquitto on loopback for the demo and the tests: one launcher for both.

The demo and the suite use the real broker a plant would (the set-up installs Debian's
``mosquitto``); there is deliberately no home-made fallback broker, whose behaviour would
differ from the real one in exactly the cases worth testing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edge.errors import EdgeError

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


class Mosquitto:
    """A Mosquitto process on 127.0.0.1; restartable on the same port, optionally persistent.

    ``extra`` is appended to the generated configuration (listeners, TLS, ACLs for tests).
    """

    def __init__(self, workdir: Path | None = None, port: int | None = None, extra: str = "", persistent: bool = False) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise EdgeError("mosquitto is not installed: run 'sudo apt-get install mosquitto' (make demo/test do it as root)")
        self.binary = binary
        self._tmp = tempfile.TemporaryDirectory(prefix="conveyor-broker-") if workdir is None else None
        self.workdir = workdir if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra = extra
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / "mosquitto.log"

    def config_text(self) -> str:
        user = "user root\n" if os.geteuid() == 0 else ""
        listener = "" if "listener" in self.extra else f"listener {self.port} 127.0.0.1\n"
        anonymous = "" if "allow_anonymous" in self.extra else "allow_anonymous true\n"
        persistence = (f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
                       if self.persistent else "persistence false\n")
        return f"{user}{persistence}{listener}{anonymous}{self.extra}\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf), "-v"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgeError(f"mosquitto exited at start: {self.log.read_text(errors='replace')[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EdgeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout:.0f} s")

    def kill(self) -> None:
        """Hard kill, like a crashed or power-cycled broker."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
