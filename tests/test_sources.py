"""Frame sources: real files, a real video through OpenCV, and the Picamera2 adapter on a stand-in."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.config import ImagesSource, OpenCVSource, Picamera2Source, SyntheticSource, parse_config
from edge.errors import ConfigError, SourceError
from edge.simulator import still_frame
from edge.sources import open_source
from edge.sources.picamera2 import PiCamera, load_picamera2, version_problem


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


def test_an_image_folder_replayed_as_fast_as_possible_carries_stream_time(tmp_path: Path) -> None:
    """``realtime: false`` replays a recorded stream faster than it was taken; each frame must then carry the time it
    was taken at (seq / fps), or every window and dwell of the levels sees hundreds of frames in a few milliseconds
    (an evaluator's 10-gap stream replayed so raised no alert at all). Looping goes on counting time."""
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(still_frame(rng, alert=False, size=(160, 120))).save(tmp_path / f"f{i}.png")
    source = open_source(source_config({"type": "images", "folder": str(tmp_path), "fps": 4.0, "loop": True, "realtime": False}))
    source.open()
    frames = [source.read() for _ in range(7)]
    assert all(f is not None for f in frames)
    assert np.allclose(np.diff([f.monotonic for f in frames]), 0.25)
    assert np.allclose(np.diff([f.wall for f in frames]), 0.25)
    assert [f.seq for f in frames] == list(range(7))


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


# What libcamera advertises (Picamera2.camera_controls keys) before and after 0.5 split AeEnable
# into ExposureTimeMode and AnalogueGainMode (libcamera src/libcamera/control_ids_core.yaml, v0.4.0 / v0.5.0).
LIBCAMERA_0_4 = frozenset({"AeEnable", "ExposureTime", "AnalogueGain", "AwbEnable", "ColourGains", "FrameDurationLimits"})
LIBCAMERA_0_5 = LIBCAMERA_0_4 | {"ExposureTimeMode", "AnalogueGainMode"}


class StandInPicamera2:
    """Picamera2's methods and behaviours that matter here; records what it was asked.

    Names and signatures checked against raspberrypi/picamera2 v0.3.20 and v0.3.36
    (picamera2/picamera2.py): ``Picamera2(camera_num)``, ``camera_controls`` (a property),
    ``create_video_configuration(main=..., buffer_count=..., controls=...)``, ``configure``,
    ``start``, ``capture_array(name="main", wait=None)`` (a number: ``job.get_result(timeout=wait)``,
    raising concurrent.futures' TimeoutError, which is the builtin one from Python 3.11),
    ``cancel_all_and_flush``, ``stop``, ``close``. Like ``Controls.__setattr__``, configure refuses a
    control the camera does not advertise ("FrameRate" is Picamera2's alias of FrameDurationLimits).
    """

    def __init__(self, camera_num: int, frames: int = 3, time_out_after: int | None = None,
                 advertised: frozenset[str] = LIBCAMERA_0_5) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.frames_left = frames
        self.time_out_after = time_out_after
        self.advertised = advertised
        self.config: dict[str, Any] = {}

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        return {name: (None, None, None) for name in self.advertised}

    def create_video_configuration(self, main: dict[str, Any], buffer_count: int, controls: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("create_video_configuration")
        return {"main": main, "buffer_count": buffer_count, "controls": controls}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")
        for name in config["controls"]:
            real = "FrameDurationLimits" if name == "FrameRate" else name
            if real not in self.advertised:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
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


def open_stand_in(raw: dict[str, Any], **stand_in: Any) -> tuple[PiCamera, list[StandInPicamera2]]:
    made: list[StandInPicamera2] = []

    def factory(number: int) -> StandInPicamera2:
        made.append(StandInPicamera2(number, **stand_in))
        return made[-1]

    config = source_config({"type": "picamera2", **raw})
    assert isinstance(config, Picamera2Source)
    camera = PiCamera(config, factory=factory)
    camera.open()
    return camera, made


def test_picamera2_adapter_configures_a_small_rgb_stream_with_fixed_exposure() -> None:
    """A BGR888 (= RGB bytes) main stream at the configured size; on libcamera >= 0.5 the exposure and
    gain modes are set to manual (AeEnable is only a wrapper there, ignored at start before 0.5.2)."""
    camera, made = open_stand_in({"size": [320, 240], "fps": 20, "exposure_us": 8000, "analogue_gain": 2.0,
                                  "awb_gains": [1.8, 1.5]}, advertised=LIBCAMERA_0_5)
    frame = camera.read()
    assert frame is not None and frame.pixels.shape == (240, 320, 3) and frame.seq == 0
    stand_in = made[0]
    assert stand_in.config["main"] == {"size": (320, 240), "format": "BGR888"}
    assert stand_in.config["controls"] == {"FrameRate": 20.0, "ExposureTime": 8000, "AnalogueGain": 2.0,
                                           "ExposureTimeMode": 1, "AnalogueGainMode": 1,
                                           "AwbEnable": False, "ColourGains": (1.8, 1.5)}
    assert stand_in.calls[:3] == ["create_video_configuration", "configure", "start"]
    assert "capture_array(main, wait=2.0)" in stand_in.calls
    camera.close()
    assert stand_in.calls[-2:] == ["stop", "close"]


def test_picamera2_on_libcamera_before_0_5_fixes_exposure_with_ae_enable() -> None:
    """libcamera < 0.5 has no mode controls (Picamera2 would refuse them): AeEnable=False fixes exposure and gain."""
    camera, made = open_stand_in({"exposure_us": 8000, "analogue_gain": 2.0}, advertised=LIBCAMERA_0_4)
    assert made[0].config["controls"] == {"FrameRate": 15.0, "ExposureTime": 8000, "AnalogueGain": 2.0, "AeEnable": False}
    assert camera.read() is not None


def test_picamera2_fixes_only_what_is_configured() -> None:
    """Only exposure fixed: gain stays automatic on libcamera >= 0.5; nothing fixed: no exposure controls at all."""
    _, made = open_stand_in({"exposure_us": 5000}, advertised=LIBCAMERA_0_5)
    assert made[0].config["controls"] == {"FrameRate": 15.0, "ExposureTime": 5000, "ExposureTimeMode": 1}
    for advertised in (LIBCAMERA_0_4, LIBCAMERA_0_5):
        _, made = open_stand_in({}, advertised=advertised)
        assert made[0].config["controls"] == {"FrameRate": 15.0}


def test_picamera2_timeout_flushes_stops_and_closes_before_reporting() -> None:
    """After a capture timeout: cancel_all_and_flush, stop, close, then SourceError so the daemon reopens."""
    camera, made = open_stand_in({"capture_timeout_s": 0.5}, time_out_after=1)
    assert camera.read() is not None
    with pytest.raises(SourceError, match="no frame within 0.5 s"):
        camera.read()
    assert made[0].calls[-3:] == ["cancel_all_and_flush", "stop", "close"]
    camera.open()  # reopen makes a fresh camera object
    assert len(made) == 2 and camera.read() is not None


def test_picamera2_minimum_version_is_0_3_20() -> None:
    """Older Picamera2 ignores a numeric wait= and lacks cancel_all_and_flush: refused with the version and the fix."""
    too_old = version_problem("0.3.19", has_cancel_all_and_flush=False)
    assert too_old is not None and "0.3.19 is too old" in too_old and ">= 0.3.20" in too_old and "apt install python3-picamera2" in too_old
    assert version_problem("0.3.19", has_cancel_all_and_flush=True) is not None  # the version decides when it is known
    assert version_problem("0.3.20", has_cancel_all_and_flush=True) is None
    assert version_problem("0.3.36", has_cancel_all_and_flush=True) is None
    assert version_problem("1.0.0", has_cancel_all_and_flush=True) is None
    unknown = version_problem(None, has_cancel_all_and_flush=False)
    assert unknown is not None and "cancel_all_and_flush" in unknown
    assert version_problem(None, has_cancel_all_and_flush=True) is None


def test_picamera2_library_is_checked_when_the_source_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Picamera2 without cancel_all_and_flush (and no version metadata) is a config error before any frame."""
    old_library = types.ModuleType("picamera2")

    class OldPicamera2:
        def capture_array(self, name: str = "main", wait: float | None = None) -> None: ...

    old_library.Picamera2 = OldPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", old_library)
    with pytest.raises(ConfigError, match="needs picamera2 >= 0.3.20"):
        PiCamera(source_config({"type": "picamera2"}))

    class CurrentPicamera2(OldPicamera2):
        def cancel_all_and_flush(self) -> None: ...

    current_library = types.ModuleType("picamera2")
    current_library.Picamera2 = CurrentPicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", current_library)
    assert load_picamera2() is CurrentPicamera2


def test_picamera2_missing_library_is_a_clear_error() -> None:
    """Without python3-picamera2, building the source is a config error (exit 2) that says what to install."""
    config = source_config({"type": "picamera2"})
    with pytest.raises(ConfigError, match="python3-picamera2"):
        open_source(config)


def test_source_factory_picks_the_configured_backend() -> None:
    """Each config type maps to its adapter, imported lazily."""
    assert open_source(source_config({"type": "synthetic"})).name == "synthetic"
    assert isinstance(source_config({"type": "synthetic"}), SyntheticSource)
    assert isinstance(source_config({"type": "images", "folder": "/x"}), ImagesSource)
    assert isinstance(source_config({"type": "opencv", "uri": 0}), OpenCVSource)
