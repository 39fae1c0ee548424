"""A real Mosquitto process on a free loopback port, restartable on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from edge.broker import find_mosquitto, free_port


def free_port_below_ephemeral() -> int:
    """A free port under Linux's ephemeral range (32768+): a client that keeps connecting to a closed
    ephemeral port can end up connected to itself (TCP self-connect) and hold the port."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 32000")


class Mosquitto:
    def __init__(self, workdir: Path, port: int | None = None, extra: str = "", persistent: bool = False) -> None:
        binary = find_mosquitto()
        assert binary, "mosquitto is not installed: scripts/setup-env.sh installs it (apt-get install mosquitto)"
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra = extra
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mosquitto.log"

    def config_text(self) -> str:
        user = "user root\n" if os.geteuid() == 0 else ""
        listener = f"listener {self.port} 127.0.0.1\n"
        if "listener" in self.extra:
            listener = ""
        anonymous = "" if "allow_anonymous" in self.extra else "allow_anonymous true\n"
        persistence = (f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
                       if self.persistent else "persistence false\n")
        return f"{user}{persistence}{listener}{anonymous}{self.extra}\n"

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf), "-v"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mosquitto exited: {self.log.read_text()[-2000:]}"
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log.read_text()[-2000:]}")

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

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()
