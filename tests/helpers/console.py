"""A daemon with the console, in this process: the shipped fakes (no TFLite runtime), the real simulator
camera, the real evidence keeper and the real console server on a free loopback port; and a small
HTTP client (the standard library's) that keeps cookies and can send any header."""

from __future__ import annotations

import http.cookiejar
import json
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.config import SyntheticSource, load_config
from edge.daemon import Daemon, DaemonParts
from edge.demo.broker import free_port
from edge.fakes import FakeClassifier
from edge.messages import DeviceIdentity
from edge.publishing import Publishers
from edge.publishing.recording import RecordingPublisher
from edge.service.lifecycle import attach_features
from edge.sources.base import Frame
from edge.sources.synthetic import SyntheticCamera
from helpers.daemon import merge, wait_until


class KeptFrames:
    """The simulator camera, remembering its last frames by sequence number (to compare with what the console serves)."""

    name = "kept-synthetic"

    def __init__(self, config: SyntheticSource) -> None:
        self.camera = SyntheticCamera(config)
        self.frames: OrderedDict[int, Frame] = OrderedDict()
        self.lock = threading.Lock()

    def open(self) -> None:
        self.camera.open()

    def read(self) -> Frame | None:
        frame = self.camera.read()
        if frame is not None:
            with self.lock:
                self.frames[frame.seq] = frame
                while len(self.frames) > 200:
                    self.frames.popitem(last=False)
        return frame

    def close(self) -> None:
        self.camera.close()

    def frame(self, seq: int) -> Frame:
        with self.lock:
            return self.frames[seq]


def alternating(period_frames: int = 20) -> FakeClassifier:
    """Alert for ``period_frames`` calls, then ok for as many, and so on: a level change every period."""
    return FakeClassifier.scripted(lambda n: 0.95 if (n // period_frames) % 2 else 0.05)


def console_config(tmp: Path, **override: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device": {"site": "s1", "line": "l1", "name": "dev1"},
        "source": {"type": "synthetic", "fps": 10, "width": 160, "height": 120, "realtime": True, "drops": []},
        "levels": {"window_s": 0.1, "dwell_s": 0.1, "min_frames": 2},
        "service": {"state_dir": str(tmp / "state")},
        "evidence": {"spacing_s": 0.1, "frames_before": 2, "frames_after": 2, "max_per_hour": 3600},
        "console": {"enabled": True, "listen": f"127.0.0.1:{free_port()}"},
    }
    return merge(base, override)


@dataclass
class ConsoleDaemon:
    daemon: Daemon
    source: KeptFrames
    publisher: RecordingPublisher
    console: Any
    config_path: Path
    thread: threading.Thread

    @property
    def url(self) -> str:
        assert self.console.url is not None, "the console is not listening"
        return str(self.console.url).rstrip("/")

    def stop(self) -> None:
        self.daemon.stop.set()
        self.thread.join(15)


def start_console_daemon(tmp: Path, classifier: FakeClassifier | None = None, **override: Any) -> ConsoleDaemon:
    """Write the config file, build the daemon from the fakes, wire the features as start-up does, run it in a thread."""
    config_path = tmp / "config.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text("# a test config; the lane editor keeps this comment\n" + yaml.safe_dump(console_config(tmp, **override)))
    config = load_config(config_path)
    assert isinstance(config.source, SyntheticSource)
    source = KeptFrames(config.source)
    recording = RecordingPublisher()
    daemon = Daemon(DaemonParts(config, classifier or alternating(), source, Publishers([recording])))
    identity = DeviceIdentity(config.device.site, config.device.line, config.device.name)
    console = attach_features(daemon, identity, config_path=config_path)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
    thread.start()
    running = ConsoleDaemon(daemon, source, recording, console, config_path, thread)
    if console is not None:
        wait_until(lambda: console.url is not None or console.server.error is not None, 10, "the console to listen")
    return running


class Http:
    """urllib with a cookie jar; returns (status, headers, body) and never raises on HTTP errors."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with self.opener.open(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, headers=headers)

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def post(self, path: str, body: Any, csrf: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if csrf is not None:
            all_headers["X-CSRF-Token"] = csrf
        status, _, raw = self.request("POST", path, body, all_headers)
        return status, (json.loads(raw) if raw else None)

    def csrf(self) -> str:
        return str(self.json("/api/session")["csrf"])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(predicate, timeout, what)
