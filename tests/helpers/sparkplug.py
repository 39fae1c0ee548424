"""Drive the independent Sparkplug host (tests/helpers/spb_host.py in .venv-spb) from a test."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SPB_PYTHON = REPO / ".venv-spb" / "bin" / "python"
HOST_SCRIPT = Path(__file__).resolve().parent / "spb_host.py"


class SparkplugHost:
    """A pysparkplug host application in its own process; every message it decodes is one dict."""

    def __init__(self, port: int, group: str, out: Path, host_id: str | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        assert SPB_PYTHON.exists(), "run scripts/setup-env.sh spb (make test does)"
        self.out = out
        args = [str(SPB_PYTHON), str(HOST_SCRIPT), "--port", str(port), "--group", group, "--out", str(out)]
        if host_id:
            args += ["--host-id", host_id]
        if username:
            args += ["--username", username, "--password", password or ""]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, text=True)
        self.wait_for(lambda ms: any(m.get("event") == "connected" for m in ms), 15, "the host connected")

    def messages(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.endswith("}")]

    def sparkplug(self, kind: str | None = None, device: str | None = "*") -> list[dict[str, Any]]:
        """Decoded Sparkplug messages (optionally of one type, and of one device; None = node messages)."""
        return [m for m in self.messages() if "type" in m and m["type"] != "STATE" and (kind is None or m["type"] == kind)
                and (device == "*" or m.get("device") == device)]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            if predicate(messages):
                return messages
            if time.monotonic() > deadline:
                tail = [(m.get("type") or m.get("event"), m.get("device"), m.get("seq")) for m in messages[-12:]]
                raise AssertionError(f"timed out waiting for {what}; last messages: {tail}")
            if self.proc.poll() is not None:
                raise AssertionError(f"the Sparkplug host exited ({self.proc.returncode}) while waiting for {what}")
            time.sleep(0.05)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def metric(message: dict[str, Any], name: str) -> dict[str, Any]:
    """The metric ``name`` of a decoded message (names resolved through the births)."""
    found = [m for m in message["metrics"] if m["name"] == name]
    assert found, f"{name} not in {[m['name'] for m in message['metrics']]}"
    return found[0]
