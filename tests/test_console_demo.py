"""`make demo` serves the console: the reviewer reads the printed URL and fetches /, /api/status and /api/frame.jpg."""

from __future__ import annotations

import io
import json
import queue
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest
from PIL import Image

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.output_side]


def test_the_demo_prints_the_console_url_and_serves_the_live_frame() -> None:
    """`edge-daemon demo` prints `console: http://127.0.0.1:PORT/`; the page, the status and a real JPEG are there; Ctrl-C ends it."""
    demo = subprocess.Popen([sys.executable, "-m", "edge", "demo", "--seconds", "120"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in iter(demo.stdout.readline, "")], daemon=True).start()  # type: ignore[union-attr]
    try:
        url = ""
        while not url:
            line = lines.get(timeout=60)
            if line.startswith("console: "):
                url = line.split(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"/static/live.js" in page.read()
        with urllib.request.urlopen(url + "api/status", timeout=10) as response:
            status = json.loads(response.read())
        card = json.loads(open("edge/models/conveyor_int8.card.json").read())
        assert status["model_sha256"] == card["tflite_sha256"] and status["device"]["name"] == "edge-demo"
        assert [r["name"] for r in status["rois"]] == ["belt"]
        with urllib.request.urlopen(url + "api/frame.jpg", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            with Image.open(io.BytesIO(response.read())) as image:
                assert image.format == "JPEG" and image.size == (320, 240)
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(30)
    assert code == 0, demo.stderr.read()  # type: ignore[union-attr]
