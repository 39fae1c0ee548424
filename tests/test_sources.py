"""Frame sources: real files, a real video through OpenCV, and the Picamera2 adapter on a stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.config import ImagesSource, OpenCVSource, Picamera2Source, SyntheticSource, parse_config
from edge.errors import SourceError
from edge.simulator import still_frame
from edge.sources import open_source
from edge.sources.picamera2 import PiCamera


def source_config(raw: dict[str, Any]) -> Any:
    return parse_config({"source": raw}, check_files=False).source


def test_frames_carry_sequence_numbers_and_both_clocks() -> None:
    """Synthetic frames: seq counts up; monotonic and wall times advance by 1/fps in stream time."""
    source = open_source(source_config({"type": "synthetic", "fps": 10, "realtime": False, "duration_s": 0.5}))
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert np.allclose(np.diff([f.monotonic for f in frames]), 0.1)
    assert np.allclose(np.diff([f.wall for f in frames]), 0.1)
    assert frames[0].pixels.shape == (240, 320, 3) and frames[0].pixels.dtype == np.uint8


def test_image_folder_replays_once_or_loops(tmp_path: Path) -> None:
    """A folder of JPEG/PNG files is read in name order; loop restarts it, once ends it."""
    rng = np.random.default_rng(2)
    for i, suffix in enumerate([".jpg", ".png", ".jpg"]):
        Image.fromarray(still_frame(rng, alert=False, size=(160, 120))).save(tmp_path / f"f{i}{suffix}")
    (tmp_path / "notes.txt").write_text("ignored")
    once = open_source(source_config({"type": "images", "folder": str(tmp_path), "loop": False, "realtime": False}))
    once.open()
    assert [once.read() is not None for _ in range(4)] == [True, True, True, False]
    looping = open_source(source_config({"type": "images", "folder": str(tmp_path), "loop": True, "realtime": False}))
    looping.open()
    assert all(looping.read() is not None for _ in range(7))


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    """An empty folder fails to open; a corrupt file fails to read, naming the file."""
    empty = open_source(source_config({"type": "images", "folder": str(tmp_path), "realtime": False}))
    with pytest.raises(SourceError, match="no image files"):
        empty.open()
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    broken = open_source(source_config({"type": "images", "folder": str(tmp_path), "realtime": False}))
    broken.open()
    with pytest.raises(SourceError, match="bad.jpg"):
        broken.read()


def test_opencv_reads_a_real_video_file_as_rgb(tmp_path: Path) -> None:
    """An MJPG AVI written by OpenCV comes back frame by frame, converted from BGR to RGB."""
    import cv2  # the [camera] extra: both test environments install it
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (160, 120))
    red = np.zeros((120, 160, 3), np.uint8)
    red[:, :, 2] = 255  # BGR: pure red
    for _ in range(5):
        writer.write(red)
    writer.release()
    source = open_source(source_config({"type": "opencv", "uri": str(path), "fps": 200}))
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert len(frames) == 5
    r, g, b = frames[0].pixels.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 40 and b < 40


def test_opencv_open_failure_is_a_source_error() -> None:
    """A device that does not exist cannot be opened: SourceError, not a crash."""
    import cv2  # noqa: F401  (the [camera] extra: both test environments install it)
    source = open_source(source_config({"type": "opencv", "uri": "/nonexistent/video.avi"}))
    with pytest.raises(SourceError, match="cannot open"):
        source.open()


class StandInPicamera2:
    """Has Picamera2's method names and behaviours that matter here; records what it was asked."""

    def __init__(self, camera_num: int, frames: int = 3, time_out_after: int | None = None) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.frames_left = frames
        self.time_out_after = time_out_after
        self.config: dict[str, Any] = {}

    def create_video_configuration(self, main: dict[str, Any], buffer_count: int, controls: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"main": main, "buffer_count": buffer_count, "controls": controls}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str = "main", wait: float | None = None) -> np.ndarray:
        self.calls.append(f"capture_array({name}, wait={wait})")
        if self.time_out_after is not None and len([c for c in self.calls if c.startswith("capture")]) > self.time_out_after:
            raise TimeoutError
        w, h = self.config["main"]["size"]
        return np.full((h, w, 3), 128, np.uint8)

    def cancel_all_and_flush(self) -> None:
        self.calls.append("cancel_all_and_flush")

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_adapter_configures_a_small_rgb_stream_with_fixed_exposure() -> None:
    """A BGR888 (= RGB bytes) main stream at the configured size, fixed exposure, gain and white balance."""
    made: list[StandInPicamera2] = []
    config = source_config({"type": "picamera2", "size": [320, 240], "fps": 20, "exposure_us": 8000,
                            "analogue_gain": 2.0, "awb_gains": [1.8, 1.5]})
    assert isinstance(config, Picamera2Source)
    camera = PiCamera(config, factory=lambda n: made.append(StandInPicamera2(n)) or made[-1])
    camera.open()
    frame = camera.read()
    assert frame is not None and frame.pixels.shape == (240, 320, 3) and frame.seq == 0
    stand_in = made[0]
    assert stand_in.config["main"] == {"size": (320, 240), "format": "BGR888"}
    assert stand_in.config["controls"] == {"FrameRate": 20.0, "AeEnable": False, "ExposureTime": 8000,
                                           "AnalogueGain": 2.0, "AwbEnable": False, "ColourGains": (1.8, 1.5)}
    assert stand_in.calls[:3] == ["create_video_configuration", "configure", "start"]
    assert "capture_array(main, wait=2.0)" in stand_in.calls
    camera.close()
    assert stand_in.calls[-2:] == ["stop", "close"]


def test_picamera2_timeout_flushes_stops_and_closes_before_reporting() -> None:
    """After a capture timeout: cancel_all_and_flush, stop, close, then SourceError so the daemon reopens."""
    made: list[StandInPicamera2] = []
    config = source_config({"type": "picamera2", "capture_timeout_s": 0.5})
    camera = PiCamera(config, factory=lambda n: made.append(StandInPicamera2(n, time_out_after=1)) or made[-1])
    camera.open()
    assert camera.read() is not None
    with pytest.raises(SourceError, match="no frame within 0.5 s"):
        camera.read()
    assert made[0].calls[-3:] == ["cancel_all_and_flush", "stop", "close"]
    camera.open()  # reopen makes a fresh camera object
    assert len(made) == 2 and camera.read() is not None


def test_picamera2_missing_library_is_a_clear_error() -> None:
    """Without python3-picamera2 the adapter says what to install."""
    config = source_config({"type": "picamera2"})
    camera = open_source(config)
    with pytest.raises(SourceError, match="python3-picamera2"):
        camera.open()


def test_source_factory_picks_the_configured_backend() -> None:
    """Each config type maps to its adapter, imported lazily."""
    assert open_source(source_config({"type": "synthetic"})).name == "synthetic"
    assert isinstance(source_config({"type": "synthetic"}), SyntheticSource)
    assert isinstance(source_config({"type": "images", "folder": "/x"}), ImagesSource)
    assert isinstance(source_config({"type": "opencv", "uri": 0}), OpenCVSource)
