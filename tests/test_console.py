"""The console's HTTP API on a running daemon (the shipped fakes, the real simulator camera, the real server)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.console import ConsoleDaemon, Http, start_console_daemon, wait_for
from PIL import Image

from edge.config import load_config
from edge.errors import ConfigError
from edge.state import Level

pytestmark = [pytest.mark.output_side]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    d = start_console_daemon(tmp_path_factory.mktemp("console"))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def http(running: ConsoleDaemon) -> Http:
    return Http(running.url)


def test_status_reports_each_roi_level_smoothed_probability_health_fps_and_model(running: ConsoleDaemon, http: Http) -> None:
    """GET /api/status: per-ROI level and smoothed probability, camera health, frame rate and the model's sha256."""
    # The rate over a few seconds of frames (the first frames may come in a burst while the source catches up).
    wait_for(lambda: (http.json("/api/status")["frame"] or {}).get("seq", 0) >= 30, 15, "thirty frames")
    status = http.json("/api/status")
    assert status["model_sha256"] == "f" * 64
    assert status["health"] == "ok" and 5.0 < status["fps"] < 15.0
    [belt] = status["rois"]
    assert belt["name"] == "belt" and belt["box"] == [0.0, 0.0, 1.0, 1.0]
    assert belt["level"] in ("ok", "alert", "unknown") and 0.0 <= belt["smoothed"] <= 1.0
    assert status["frame"]["width"] == 160 and status["frame"]["height"] == 120
    assert status["device"] == {"site": "s1", "line": "l1", "name": "dev1"}
    assert status["levels"]["alert"] == {"enter": 0.6, "exit": 0.4}


def test_status_gives_each_roi_the_product_pitches_its_view_spans(tmp_path: Path) -> None:
    """The framing check's figure (telemetry view_pitches) beside each lane, for the engineer framing the camera; null
    until the daemon has one. A device of its own whose telemetry waits an hour, so that none lands in between."""
    from edge.events import TelemetrySnapshot

    device = start_console_daemon(tmp_path, telemetry={"interval_s": 3600})
    try:
        http = Http(device.url)
        device.console.telemetry(TelemetrySnapshot({"view_pitches": {"belt": None}}, 0.0, True, "f" * 64))
        assert http.json("/api/status")["rois"][0]["view_pitches"] is None
        device.console.telemetry(TelemetrySnapshot({"view_pitches": {"belt": 3.45}}, 0.0, True, "f" * 64))
        status = http.json("/api/status")
        assert status["rois"][0]["view_pitches"] == 3.45 and status["framing"] == {"min": 3.5, "max": 13.0}
    finally:
        device.stop()


def test_status_names_the_model_deciding_now_after_a_switch(tmp_path: Path) -> None:
    """A model switched in at run time (a promote or a rollback does this): /api/status names it and its runtime."""
    from edge.fakes import FakeCard, FakeClassifier

    device = start_console_daemon(tmp_path)
    try:
        http = Http(device.url)
        wait_for(lambda: http.json("/api/status")["model_sha256"] == "f" * 64, 10, "the first model")
        successor = FakeClassifier(lambda crops, _: [0.05] * len(crops), card=FakeCard(tflite_sha256="a" * 64))
        device.daemon.call_soon(lambda: device.daemon.use_classifier(successor)).result(10)
        wait_for(lambda: http.json("/api/status")["model_sha256"] == "a" * 64, 10, "the console naming the new model")
        assert http.json("/api/status")["runtime"] == "fake 0"
    finally:
        device.stop()


def test_frame_jpg_is_a_real_jpeg_of_the_current_frame(running: ConsoleDaemon, http: Http) -> None:
    """GET /api/frame.jpg decodes to the camera's frame of the sequence number it names."""
    status, headers, body = http.get("/api/frame.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    served = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.float32)
    original = running.source.frame(int(headers["X-Frame-Seq"])).pixels.astype(np.float32)
    assert served.shape == original.shape
    # As close as a quality-80 JPEG of this very frame made here (the simulator's noise and texture set the scale).
    reference = io.BytesIO()
    Image.fromarray(original.astype(np.uint8)).save(reference, "JPEG", quality=80)
    expected_error = float(np.abs(np.asarray(Image.open(reference).convert("RGB"), dtype=np.float32) - original).mean())
    assert float(np.abs(served - original).mean()) < 1.5 * expected_error + 1.0
    later = int(headers["X-Frame-Seq"]) + 10
    wait_for(lambda: later in running.source.frames, 5, "ten more frames")
    other = running.source.frame(later).pixels.astype(np.float32)
    assert float(np.abs(served - original).mean()) < float(np.abs(served - other).mean())  # not just any belt picture


def test_history_holds_the_last_minute_of_probabilities(running: ConsoleDaemon, http: Http) -> None:
    """GET /api/history: each ROI's per-frame and smoothed probability, at most ten points a second."""
    wait_for(lambda: len(http.json("/api/history")["rois"].get("belt", {}).get("t", [])) >= 10, 10, "ten points")
    belt = http.json("/api/history")["rois"]["belt"]
    assert len(belt["t"]) == len(belt["p"]) == len(belt["s"])
    assert all(b - a >= 0.09 for a, b in zip(belt["t"], belt["t"][1:], strict=False))
    assert set(belt["p"]) <= {0.05, 0.95}


def test_live_stream_sends_status_points_and_aiming_meters(running: ConsoleDaemon) -> None:
    """GET /api/live is Server-Sent Events: status, new probability points and the focus/brightness meters."""
    with socket.create_connection(("127.0.0.1", int(running.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET /api/live HTTP/1.1\r\nHost: " + running.url.split("//")[1].encode() + b"\r\n\r\n")
        sock.settimeout(10)
        data = b""
        while data.count(b"data: ") < 3:  # (chunked: each event is a chunk of its own)
            data += sock.recv(65536)
    assert b"text/event-stream" in data.split(b"\r\n\r\n")[0]
    message = json.loads(data.split(b"data: ")[2].split(b"\n\n")[0])
    assert message["status"]["rois"][0]["name"] == "belt"
    assert set(message["meters"]) == {"focus", "brightness", "clipped", "dark"} and message["meters"]["focus"] > 0


def test_events_list_changes_with_their_snapshot_frames(running: ConsoleDaemon, http: Http) -> None:
    """GET /api/events: each level change with its evidence: frames before, the key frame, frames after."""
    def with_frames() -> list[dict[str, object]]:
        return [e for e in http.json("/api/events")["events"] if e["frames"]]

    wait_for(lambda: len(with_frames()) >= 1, 20, "a change with its snapshot saved")
    event = with_frames()[0]
    assert event["type"] == "level" and event["roi"] == "belt" and event["snapshot"]
    frames = event["frames"]
    assert isinstance(frames, list) and len(frames) == 5
    assert [f["key"] for f in frames] == [False, False, True, False, False]
    offsets = [f["offset_s"] for f in frames]
    assert offsets == sorted(offsets) and offsets[2] == 0.0
    change = next(c for c in running.publisher.level_changes if c.snapshot == event["snapshot"])
    assert (change.roi, str(change.level)) == (event["roi"], event["level"])
    for frame in frames:
        status, headers, body = http.get(frame["url"])
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(body)).size == (160, 120)
    status, _, key = http.get(f"/api/snapshots/{event['snapshot']}.jpg")
    assert status == 200 and key == http.get(frames[2]["url"])[2]


@pytest.mark.parametrize("name", [
    "..%2F..%2Fconfig.yaml", "..%2Fmeta.json", "%2e%2e%2f%2e%2e%2fconfig.yaml", "meta.json", "x.jpg", "..",
    "20261124T031455123Z-3fa9c2.json", "20261124T031455123Z-3fa9c2_99.jpg", "20261124T031455123Z-3fa9c2%00.jpg",
    "%2Fetc%2Fpasswd",
])
def test_snapshot_names_cannot_leave_the_evidence_folder(http: Http, name: str) -> None:
    """Anything that is not <record>[_<index>].jpg of an existing record is a 404, never a file elsewhere."""
    status, _, body = http.get(f"/api/snapshots/{name}")
    assert status == 404 and b"conveyor" not in body and b"root:" not in body


def test_capture_files_cannot_leave_the_capture_folder(http: Http) -> None:
    """The capture routes validate both the record and the file name."""
    for path in ("/api/captures/..%2F..%2Fconfig.yaml/frame.jpg", "/api/captures/20261124T031455123Z-3fa9c2/..%2Fx.jpg",
                 "/api/captures/20261124T031455123Z-3fa9c2/frame.png"):
        assert http.get(path)[0] == 404


def test_pages_and_static_files_are_served_and_nothing_else(http: Http) -> None:
    """The four pages and their assets; no directory listing, no path outside static/."""
    for path in ("/", "/lanes", "/events", "/dataset"):
        status, headers, body = http.get(path)
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/static/console.js" in body
        assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    assert http.get("/static/live.js")[0] == 200
    for path in ("/static/..%2Fserver.py", "/static/", "/static/live.html", "/api/nothing"):
        assert http.get(path)[0] == 404


def test_an_unknown_host_header_is_refused_when_anyone_local_is_admin(running: ConsoleDaemon, http: Http) -> None:
    """Without users every local client is admin: a foreign Host (DNS rebinding) gets nothing."""
    status, _, _ = http.get("/api/status", headers={"Host": "attacker.example"})
    assert status == 421
    assert http.get("/api/status", headers={"Host": f"localhost:{running.url.rsplit(':', 1)[1]}"})[0] == 200


def test_a_write_without_the_csrf_token_is_refused_even_for_the_local_admin(running: ConsoleDaemon, http: Http) -> None:
    """Every write needs the session's CSRF token and the same origin."""
    body = {"enabled": False}
    assert http.post("/api/capture", body)[0] == 403
    assert http.post("/api/capture", body, csrf="forged")[0] == 403
    origin = {"Origin": "http://attacker.example"}
    assert http.post("/api/capture", body, csrf=http.csrf(), headers=origin)[0] == 403
    assert http.post("/api/capture", body, csrf=http.csrf(), headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    status, answer = http.post("/api/capture", body, csrf=http.csrf(), headers={"Origin": running.url})
    assert status == 200 and answer["enabled"] is False


def test_a_stalled_browser_does_not_hold_up_the_frame_loop(running: ConsoleDaemon) -> None:
    """Clients that never read their responses (live stream, frames) leave the daemon judging frames."""
    port = int(running.url.rsplit(":", 1)[1])
    stalled = []
    for path in ("/api/live", "/api/frame.jpg", "/api/live"):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() * 50)
        stalled.append(sock)
    try:
        start = running.daemon.stats.frames
        wait_for(lambda: running.daemon.stats.frames >= start + 30, 10, "30 more frames while clients stall")
        assert Http(running.url).get("/api/status")[0] == 200  # and the console still answers others
    finally:
        for sock in stalled:
            sock.close()


# --- lanes ------------------------------------------------------------------------------------------------


@pytest.fixture
def editable(tmp_path: Path) -> Iterator[ConsoleDaemon]:
    d = start_console_daemon(tmp_path)
    yield d
    d.stop()


def test_saving_lanes_rewrites_the_file_atomically_with_a_backup_and_applies_them(editable: ConsoleDaemon) -> None:
    """POST /api/rois: the file keeps its other lines and comments, the old one is kept as .bak, the daemon adopts the lanes."""
    http = Http(editable.url)
    before = editable.config_path.read_text()
    assert "rois:" not in before  # the defaults: one ROI 'belt' over the whole frame
    wait_for(lambda: editable.daemon.state.level("belt") != Level.UNKNOWN, 10, "the belt judged")
    lanes = [{"name": "belt", "box": [0.0, 0.0, 1.0, 1.0]}, {"name": "lane-b", "box": [0.12345678, 0.5, 0.5, 0.5]}]
    status, body = http.post("/api/rois", {"rois": lanes}, csrf=http.csrf())
    assert status == 200, body
    assert body["rois"][1] == {"name": "lane-b", "box": [0.1235, 0.5, 0.5, 0.5], "flow": "across"}
    after = editable.config_path.read_text()
    assert after == before + 'rois:\n  - name: "belt"\n    box: [0.0, 0.0, 1.0, 1.0]\n  - name: "lane-b"\n    box: [0.1235, 0.5, 0.5, 0.5]\n'
    assert editable.config_path.with_name("config.yaml.bak").read_text() == before
    assert [r.name for r in load_config(editable.config_path).rois] == ["belt", "lane-b"]
    wait_for(lambda: [n for n, _ in editable.daemon.state.levels] == ["belt", "lane-b"], 5, "the daemon on two lanes")
    wait_for(lambda: editable.daemon.state.level("lane-b") != Level.UNKNOWN, 10, "the new lane judged")
    # The belt kept its smoothing and level, and the new lane's first verdict is not a change in flow.
    assert not [c for c in editable.publisher.level_changes if c.roi == "lane-b" and c.previous == Level.UNKNOWN]
    assert http.json("/api/rois")["rois"][1]["name"] == "lane-b"
    assert [r["name"] for r in http.json("/api/status")["rois"]] == ["belt", "lane-b"]


def test_invalid_lanes_are_refused_with_the_check_config_messages_and_nothing_changes(editable: ConsoleDaemon,
                                                                                       tmp_path: Path) -> None:
    """A box outside the frame, a bad name, a short box: 400 with exactly check-config's one-line problems; file untouched."""
    http = Http(editable.url)
    before = editable.config_path.read_text()
    bad = [{"name": "a b", "box": [0.5, 0.0, 0.7, 1.0]}, {"name": "ok", "box": [0.0, 0.0, 0.5]}]
    status, body = http.post("/api/rois", {"rois": bad}, csrf=http.csrf())
    assert status == 400
    check = tmp_path / "same-lanes-by-hand.yaml"
    check.write_text(before + yaml.safe_dump({"rois": bad}))
    with pytest.raises(ConfigError) as by_hand:
        load_config(check)
    # The same problems, worded the same, each naming the key; only the file name differs.
    assert [p.split(": ", 1)[1] for p in body["problems"]] == [p.split(": ", 1)[1] for p in by_hand.value.problems]
    assert len(body["problems"]) >= 2 and all("\n" not in p and "rois[" in p for p in body["problems"])
    assert editable.config_path.read_text() == before and not editable.config_path.with_name("config.yaml.bak").exists()
    assert [n for n, _ in editable.daemon.state.levels] == ["belt"]
    assert http.post("/api/rois", {"nothing": 1}, csrf=http.csrf())[0] == 400


def test_lanes_that_cannot_be_written_are_refused_in_one_line_and_nothing_changes(editable: ConsoleDaemon) -> None:
    """When the file cannot be written (here its backup's name is taken by a folder): 409 in one line; file and daemon unchanged."""
    http = Http(editable.url)
    before = editable.config_path.read_text()
    editable.config_path.with_name("config.yaml.bak").mkdir()
    status, body = http.post("/api/rois", {"rois": [{"name": "x", "box": [0, 0, 0.5, 0.5]}]}, csrf=http.csrf())
    assert status == 409 and "cannot write" in body["error"] and "unchanged" in body["error"] and "\n" not in body["error"]
    assert editable.config_path.read_text() == before
    assert [n for n, _ in editable.daemon.state.levels] == ["belt"]


def test_the_daemon_goes_on_when_the_console_port_is_taken(tmp_path: Path) -> None:
    """A console that cannot listen is logged; the belt is still watched."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = start_console_daemon(tmp_path, console={"listen": f"127.0.0.1:{port}"})
        try:
            assert d.console.url is None and d.console.server.error
            wait_for(lambda: d.daemon.stats.frames > 20, 10, "frames judged without the console")
        finally:
            d.stop()


def test_capture_toggled_from_the_api_keeps_frames_and_off_keeps_none(editable: ConsoleDaemon) -> None:
    """POST /api/capture on: records appear under the state directory; off: no more are written."""
    http = Http(editable.url)
    status, body = http.post("/api/capture", {"enabled": True, "every_s": 1}, csrf=http.csrf())
    assert status == 200 and body["enabled"] is True
    wait_for(lambda: http.json("/api/capture")["records"] >= 2, 15, "two captures")
    http.post("/api/capture", {"enabled": False}, csrf=http.csrf())
    settled = http.json("/api/capture")["records"]
    frames = editable.daemon.stats.frames
    wait_for(lambda: editable.daemon.stats.frames > frames + 30, 10, "30 frames with capture off")
    assert http.json("/api/capture")["records"] <= settled + 1  # at most the one queued as it switched
    items = http.json("/api/dataset")["items"]
    assert items and items[0]["image"].startswith("/api/captures/")
    status, _headers, body = http.get(items[0]["image"])
    assert status == 200 and min(Image.open(io.BytesIO(body)).size) >= 128  # a 160x120 frame's crop, enlarged
