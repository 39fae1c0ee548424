"""The console's cost to the daemon: CPU with the console off, on and idle, and on with one live viewer; memory.

    python benchmarks/console.py MODEL ROUNDS SECONDS     (prints one JSON object)

Three real ``edge-daemon run`` processes side by side, identical but for the console: ``off``
(console disabled), ``idle`` (enabled, nobody connected) and ``viewer`` (enabled, one live viewer).
Each watches the same camera-like source (640x480 JPEG files decoded per frame at 15 fps, as in
benchmarks/process.py) and publishes to one real Mosquitto. The viewer makes the live page's
requests from this process: ``/api/frame.jpg`` as fast as the page asks (4 a second at most) and
the ``/api/live`` event stream.

The three run at the same time, so every window sees the same machine load; CPU is read from
/proc/PID/stat (user + system) over ``ROUNDS`` windows of ``SECONDS`` each and each process's
figure is the median over windows; the console's cost is the difference to ``off``, in % of one
core, taken per window (the median of those differences). Memory is VmRSS at the end. Frame rates
come from each daemon's own telemetry.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from edge.demo.broker import Mosquitto, free_port
from edge.simulator import still_frame

MODES = ("off", "idle", "viewer")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_FPS = 4.0  # what the live page asks for at most (edge/console/static/live.js)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


class Viewer:
    """The live page's requests: the latest frame (at most PAGE_FPS a second) and the event stream."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.frames = 0
        self.distinct: set[str] = set()
        self.events = 0
        self.threads = [threading.Thread(target=self._frames, daemon=True), threading.Thread(target=self._live, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _frames(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url + "/api/frame.jpg", timeout=10) as response:
                    response.read()
                    self.frames += 1
                    self.distinct.add(response.headers["X-Frame-Seq"])
            except OSError:
                pass
            self.stop.wait(max(0.05, 1.0 / PAGE_FPS - (time.monotonic() - started)))

    def _live(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url + "/api/live", timeout=10) as response:
                    for line in response:
                        if line.startswith(b"data: "):
                            self.events += 1
                        if self.stop.is_set():
                            return
            except OSError:
                self.stop.wait(0.2)


def main() -> None:
    model, rounds, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    broker = Mosquitto().start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    fps: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "frames"
        frames.mkdir()
        rng = np.random.default_rng(3)
        for i in range(10):
            Image.fromarray(still_frame(rng, alert=False, size=(640, 480))).save(frames / f"{i:02d}.jpg", quality=90)
        ports = {mode: free_port() for mode in MODES}

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            figures = json.loads(message.payload)
            fps[figures["device"]].append(float(figures["fps"]))

        listener = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        listener.on_message = on_message
        listener.connect(broker.host, broker.port)
        listener.subscribe("bench/+/telemetry", qos=0)
        listener.loop_start()
        for mode in MODES:
            config = Path(tmp) / f"{mode}.yaml"
            config.write_text(json.dumps({
                "device": {"name": mode}, "model": {"path": str(model)}, "mqtt": {"port": broker.port, "topic_prefix": "bench/{device}"},
                "source": {"type": "images", "folder": str(frames), "fps": 15, "loop": True}, "telemetry": {"interval_s": 2},
                "service": {"state_dir": str(Path(tmp) / mode), "log_level": "warning"},
                "console": {"enabled": mode != "off", "listen": f"127.0.0.1:{ports[mode]}"}}))
            procs[mode] = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        viewer = None
        try:
            url = f"http://127.0.0.1:{ports['viewer']}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url + "/api/frame.jpg", timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            viewer = Viewer(url)
            time.sleep(3.0)  # start-up (model load, first JPEG encodes, imports) is not the steady state
            windows: dict[str, list[float]] = {mode: [] for mode in MODES}
            for mode in MODES:
                fps[mode].clear()
            for _ in range(rounds):
                before = {mode: cpu_seconds(p.pid) for mode, p in procs.items()}
                t0 = time.monotonic()
                time.sleep(seconds)
                elapsed = time.monotonic() - t0
                for mode, p in procs.items():
                    windows[mode].append((cpu_seconds(p.pid) - before[mode]) / elapsed * 100.0)
            rss = {mode: rss_mb(p.pid) for mode, p in procs.items()}
            viewed_s = rounds * seconds + 3.0
        finally:
            if viewer is not None:
                viewer.stop.set()
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                p.wait(15)
            listener.loop_stop()
    broker.close()
    over = {mode: [w - o for w, o in zip(windows[mode], windows["off"], strict=True)] for mode in ("idle", "viewer")}
    assert viewer is not None
    print(json.dumps({
        "rounds": rounds, "window_s": seconds, "source": "images 640x480 JPEG at 15 fps",
        "cpu_percent_of_a_core": {mode: statistics.median(v) for mode, v in windows.items()},
        "cpu_windows": windows,
        "console_cpu_percent": {mode: statistics.median(v) for mode, v in over.items()},
        "rss_mb": rss, "console_rss_mb": max(rss["idle"], rss["viewer"]) - rss["off"],
        "fps": {mode: (statistics.median(v) if v else None) for mode, v in fps.items()},
        "viewer": {"frames_per_s": viewer.frames / viewed_s, "distinct_frames_per_s": len(viewer.distinct) / viewed_s,
                   "live_events_per_s": viewer.events / viewed_s},
    }))


if __name__ == "__main__":
    main()
