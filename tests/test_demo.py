"""The README's first command: the demo shows the whole product against a real Mosquitto."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
from helpers.broker import Mosquitto
from helpers.subscriber import Message, validate

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "demo", *args], capture_output=True, text=True, timeout=120)


def test_mosquitto_sub_on_the_demo_broker_sees_retained_state_and_valid_events(mosquitto: Mosquitto) -> None:
    """`mosquitto_sub -v -t 'plant/#'` on the demo's broker: retained status/state, schema-valid events and telemetry."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-v", "-t", "plant/#",
                            "-F", "%r %t %p"], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(sub.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        result = run_demo("--broker", f"{mosquitto.host}:{mosquitto.port}", "--seconds", "20")
        assert result.returncode == 0, result.stderr
        late = subprocess.run(["mosquitto_sub", "-h", mosquitto.host, "-p", str(mosquitto.port), "-v", "-t", "plant/#",
                               "-F", "%r %t %p", "-W", "2"], capture_output=True, text=True, timeout=30)
    finally:
        sub.terminate()
        sub.wait(10)
    reader.join(5)
    messages = [Message(t, p, r == "1", 1, 0.0) for r, t, p in (line.rstrip("\n").split(" ", 2) for line in lines)]
    for message in messages:
        validate(message)
    events = [m.json() for m in messages if m.topic.endswith("/event") and m.json()["type"] == "level"]
    assert [(e["previous"], e["level"]) for e in events] == [("ok", "alert"), ("alert", "ok")] * 2
    assert any(m.topic.endswith("/telemetry") for m in messages)
    # While it ran, the one-tag status followed the belt; a subscriber arriving afterwards reads offline,
    # and the belt state unknown (a stopped device no longer knows).
    statuses = [m.payload for m in messages if m.topic.endswith("/status")]
    assert statuses[:2] == ["unknown", "ok"] and "alert" in statuses and statuses[-1] == "offline"
    retained = {t: p for r, t, p in (line.split(" ", 2) for line in late.stdout.splitlines()) if r == "1"}
    assert retained["plant/demo-site/line-1/edge-demo/status"] == "offline"
    assert retained["plant/demo-site/line-1/edge-demo/state/belt"] == "unknown"
    assert len(re.findall(r"event #\d+: belt alert -> ok", result.stdout)) == 2


def test_the_demo_starts_its_own_broker() -> None:
    """With no --broker the demo starts one on loopback itself and says which."""
    result = run_demo("--seconds", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# broker: mosquitto") and "the device is now offline" in result.stdout


def test_a_bad_broker_argument_is_one_line_and_exit_2() -> None:
    """--broker must be HOST:PORT."""
    result = run_demo("--broker", "nonsense")
    assert result.returncode == 2 and result.stderr.strip() == "edge-daemon: --broker: expected HOST:PORT, got 'nonsense'"
