"""The output side, measured: flash writes, backlog drain, and how fast a new alarm gets through a backlog.

    python benchmarks/output.py storage SECONDS     idle daemon, then events every 2 s: bytes and syncs
    python benchmarks/output.py drain ROWS          a stored backlog draining to Mosquitto, live events on top

Prints one JSON object. Storage is read from /proc/PID/io (``write_bytes``: what the process sent
to the block layer) and syncs are counted with strace (``fsync``/``fdatasync``), both on the real
daemon process (15 fps synthetic camera, default telemetry every 10 s) against a real Mosquitto.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.demo.broker import Mosquitto
from edge.mqtt import MqttSettings, MqttTransport
from edge.outbox import Outbox

DAY = 86_400.0


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


class SyncCounter:
    """strace attached to a process for a window, counting fsync/fdatasync (None when strace is missing)."""

    def __init__(self, pid: int, log: Path) -> None:
        self.log = log
        self.proc = None
        if shutil.which("strace"):
            self.proc = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(log), "-p", str(pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # strace attaches to every thread; give it a moment before the window opens

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        self.proc.wait(10)
        return sum(1 for line in self.log.read_text().splitlines() if "sync(" in line)


def window(pid: int, seconds: float, tmp: Path, name: str, count_events: Any = None) -> dict[str, Any]:
    counter = SyncCounter(pid, tmp / f"{name}.strace")
    events0 = count_events() if count_events else 0
    bytes0 = write_bytes(pid)
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    written = write_bytes(pid) - bytes0
    syncs = counter.stop()
    events = (count_events() - events0) if count_events else 0
    return {"seconds": elapsed, "bytes": written, "syncs": syncs, "events": events,
            "bytes_per_day": written / elapsed * DAY, "syncs_per_day": None if syncs is None else syncs / elapsed * DAY}


def storage(seconds: float) -> dict[str, Any]:
    """Idle (no events, telemetry every 10 s) and busy (a 2 s drop every 6 s: an alert and a recovery) windows on one
    daemon each."""
    broker = Mosquitto().start()
    result: dict[str, Any] = {}
    try:
        for name, drops in (("idle", []), ("events", [{"start_s": 1.0 + 6.0 * k, "duration_s": 2.0} for k in range(5000)])):
            with tempfile.TemporaryDirectory() as tmp:
                log = Path(tmp) / "d.log"
                config = Path(tmp) / "c.yaml"
                config.write_text(json.dumps({
                    "source": {"type": "synthetic", "fps": 15, "duration_s": 86400, "drops": drops},
                    "levels": {"window_s": 0.2, "dwell_s": 0.1}, "mqtt": {"port": broker.port},
                    "service": {"state_dir": str(Path(tmp) / "state"), "log_level": "warning"}}))
                with log.open("wb") as out:
                    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                            stdout=subprocess.DEVNULL, stderr=out)
                try:
                    time.sleep(3.0)  # start-up (model load, first commit of the outbox) is not the steady state

                    def stored_events(state: Path = Path(tmp) / "state" / "outbox.sqlite") -> int:
                        import sqlite3
                        # Read the epoch counter through a copy: the daemon holds the database exclusively.
                        copy = Path(tmp) / "peek.sqlite"
                        for suffix in ("", "-wal"):
                            if Path(f"{state}{suffix}").exists():
                                shutil.copy(f"{state}{suffix}", f"{copy}{suffix}")
                        db = sqlite3.connect(copy)
                        try:
                            row = db.execute("SELECT value FROM store_meta WHERE key='last_seq'").fetchone()
                        finally:
                            db.close()
                        return int(row[0]) if row else 0

                    result[name] = window(proc.pid, seconds, Path(tmp), name, stored_events if drops else None)
                finally:
                    proc.terminate()
                    proc.wait(15)
    finally:
        broker.close()
    idle, busy = result["idle"], result["events"]
    per_event_bytes = max(0.0, (busy["bytes"] - idle["bytes_per_day"] * busy["seconds"] / DAY)) / max(1, busy["events"])
    per_event_syncs = None
    if busy["syncs"] is not None and idle["syncs"] is not None:
        per_event_syncs = max(0.0, busy["syncs"] - idle["syncs_per_day"] * busy["seconds"] / DAY) / max(1, busy["events"])
    result["per_event"] = {"bytes": per_event_bytes, "syncs": per_event_syncs}
    result["one_event_a_minute"] = {
        "bytes_per_day": idle["bytes_per_day"] + 1440 * per_event_bytes,
        "syncs_per_day": None if per_event_syncs is None else idle["syncs_per_day"] + 1440 * per_event_syncs}
    return result


def drain(rows: int) -> dict[str, Any]:
    """A backlog of ``rows`` stored events meets a broker; live events every 20 ms must not wait behind it."""
    broker = Mosquitto().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            outbox = Outbox(Path(tmp) / "o.sqlite", max(rows * 2, 10))
            body = json.dumps({"backlog": True, "pad": "x" * 400})  # about the size of a real event
            for start in range(0, rows, 5000):
                outbox.add_many([("bench/event", lambda s, e, ep: body)] * min(5000, rows - start))
            # The subscriber is another process (mosquitto_sub), printing the receive time beside each payload.
            sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "bench/live",
                                    "-q", "1", "-F", "%U %p"], stdout=subprocess.PIPE, text=True)
            # The backlog has drained when a subscriber has every stored event: a third process that exits after
            # `rows` messages. (The outbox's pending count is no finish line: a live event is in flight at almost
            # any instant, so "pending == 0" was a race that stretched the measured drain to minutes.)
            backlog = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "bench/event",
                                        "-q", "1", "-C", str(rows)], stdout=subprocess.DEVNULL)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(iter(sub.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
            reader.start()
            time.sleep(0.5)  # both subscriptions made (mosquitto_sub subscribes right after connecting)
            transport = MqttTransport(MqttSettings("127.0.0.1", broker.port, "bench-drain", "bench/status", "offline",
                                                   keepalive_s=60), outbox)
            started = time.monotonic()
            transport.start()
            sent = 0
            while backlog.poll() is None and time.monotonic() - started < 300:
                transport.send_event("bench/live", lambda s, e, ep: json.dumps({"sent": time.time(), "seq": s}))
                sent += 1
                time.sleep(0.02)
            drained_in = time.monotonic() - started
            if backlog.poll() is None:
                backlog.terminate()
                backlog.wait(5)
                drained_in = float("inf")
            transport.stop()
            deadline = time.monotonic() + 5
            while len(lines) < sent and time.monotonic() < deadline:
                time.sleep(0.05)
            sub.terminate()
            sub.wait(5)
    finally:
        broker.close()
    latencies = sorted((float(t) - json.loads(p)["sent"]) * 1000.0 for t, p in (line.split(" ", 1) for line in lines if " " in line))
    return {"rows": rows, "seconds": drained_in, "events_per_s": rows / drained_in, "live_events": sent,
            "live_received": len(latencies),
            "live_latency_ms": {"p50": float(np.percentile(latencies, 50)) if latencies else None,
                                "p99": float(np.percentile(latencies, 99)) if latencies else None,
                                "max": latencies[-1] if latencies else None}}


def main() -> None:
    what, amount = sys.argv[1], float(sys.argv[2])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(json.dumps(storage(amount) if what == "storage" else drain(int(amount))))


if __name__ == "__main__":
    main()
