"""The daemon as a process: time from start to its first inference (READY=1) and peak resident memory.

    python benchmarks/process.py MODEL SECONDS     (run with the environment's python; prints JSON)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image

from edge.demo.broker import Mosquitto
from edge.simulator import still_frame


def vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> None:
    model, seconds = Path(sys.argv[1]), float(sys.argv[2])
    result = measure(model, seconds, {})
    # The evidence recorder (on by default) keeps the frames around each change: its cost, on its own.
    core = measure(model, seconds, {"evidence": {"enabled": False}})
    result["peak_rss_mb_evidence_off"] = core["peak_rss_mb"]
    print(json.dumps(result))


def measure(model: Path, seconds: float, extra: dict[str, object]) -> dict[str, object]:
    broker = Mosquitto().start()
    with tempfile.TemporaryDirectory() as tmp:
        # A camera-like source: real 640x480 JPEG files decoded per frame (the simulator's renderer
        # is a demo tool whose float temporaries would dominate the measurement).
        frames = Path(tmp) / "frames"
        frames.mkdir()
        rng = np.random.default_rng(3)
        for i in range(10):
            Image.fromarray(still_frame(rng, alert=i % 2 == 1, size=(640, 480))).save(frames / f"{i:02d}.jpg", quality=90)
        config = Path(tmp) / "c.yaml"
        config.write_text(json.dumps({
            "model": {"path": str(model)}, "mqtt": {"port": broker.port}, "telemetry": {"interval_s": 1},
            "source": {"type": "images", "folder": str(frames), "fps": 15, "loop": True},
            "service": {"state_dir": str(Path(tmp) / "state"), "log_level": "warning"}, **extra}))
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(Path(tmp) / "notify"))
        notify.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(Path(tmp) / "notify")}
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ready = None
        while ready is None:
            message = notify.recv(4096).decode()
            if "READY=1" in message:
                ready = time.monotonic() - start
        peak = 0
        end = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < end:
            peak = max(peak, vm_hwm_kb(proc.pid) or 0)
            time.sleep(0.05)
        peak = max(peak, vm_hwm_kb(proc.pid) or 0)
        proc.terminate()
        proc.wait(15)
        notify.close()
    broker.close()
    return {"start_to_first_inference_s": ready, "peak_rss_mb": peak / 1024.0, "exit_code": proc.returncode,
            "python": sys.executable}


if __name__ == "__main__":
    main()
