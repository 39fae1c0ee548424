"""The Raspberry Pi camera through Picamera2 (apt's python3-picamera2), imported lazily.

The stream is configured close to what the model needs: a small ``main`` stream in
``BGR888``, which Picamera2 delivers as [R, G, B] bytes per pixel (its manual, Appendix A:
``RGB888`` would be [B, G, R]), so frames go to preprocessing with no conversion. Fixed
exposure, gain and white balance can be set so slow lighting drift does not move the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge.config import Picamera2Source
from edge.errors import SourceError
from edge.sources.base import Frame

log = logging.getLogger(__name__)


def _default_factory(camera_num: int) -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise SourceError(
            "source type 'picamera2' needs Picamera2: sudo apt install python3-picamera2 "
            "(and a venv made with --system-site-packages)"
        ) from exc
    return Picamera2(camera_num)


class PiCamera:
    """Frames from a Picamera2 object; ``factory`` is replaceable so tests can pass a stand-in."""

    name = "picamera2"

    def __init__(self, config: Picamera2Source, factory: Callable[[int], Any] = _default_factory) -> None:
        self.config = config
        self._factory = factory
        self._cam: Any = None
        self._seq = 0

    def controls(self) -> dict[str, Any]:
        """libcamera controls for the configured frame rate and any fixed exposure/white balance."""
        c = self.config
        controls: dict[str, Any] = {"FrameRate": c.fps}
        if c.exposure_us is not None or c.analogue_gain is not None:
            controls["AeEnable"] = False
            if c.exposure_us is not None:
                controls["ExposureTime"] = c.exposure_us
            if c.analogue_gain is not None:
                controls["AnalogueGain"] = c.analogue_gain
        if c.awb_gains is not None:
            controls["AwbEnable"] = False
            controls["ColourGains"] = (c.awb_gains[0], c.awb_gains[1])
        return controls

    def open(self) -> None:
        c = self.config
        try:
            cam = self._factory(c.camera)
            size = (int(c.size[0]), int(c.size[1]))
            if c.stream == "lores":
                # lores is YUV420 only on the Pi 4 ISP; keep main tiny and RGB instead of converting YUV per frame.
                log.warning("picamera2: lores streams are YUV on Pi 4; using a small BGR888 main stream of %s", size)
            video = cam.create_video_configuration(
                main={"size": size, "format": "BGR888"}, buffer_count=4, controls=self.controls()
            )
            cam.configure(video)
            cam.start()
        except SourceError:
            raise
        except Exception as exc:  # libcamera raises RuntimeError/IndexError/OSError for missing or busy cameras
            raise SourceError(f"picamera2: cannot open camera {c.camera} ({exc.__class__.__name__}: {exc})") from exc
        self._cam = cam

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError("picamera2: camera is not open")
        try:
            pixels = self._cam.capture_array("main", wait=self.config.capture_timeout_s)
        except TimeoutError as exc:
            self._recover_after_timeout()
            raise SourceError(f"picamera2: no frame within {self.config.capture_timeout_s} s") from exc
        except Exception as exc:
            raise SourceError(f"picamera2: capture failed ({exc.__class__.__name__}: {exc})") from exc
        frame = Frame(pixels, self._seq, time.monotonic(), time.time())
        self._seq += 1
        return frame

    def _recover_after_timeout(self) -> None:
        # Drop queued requests first; stop() can block after a cable fault, and if it does the
        # frame loop stalls and the systemd watchdog restarts the service, which is the intent.
        cam, self._cam = self._cam, None
        try:
            cam.cancel_all_and_flush()
        except Exception as exc:
            log.warning("picamera2: cancel_all_and_flush failed: %s", exc)
        self._stop_and_close(cam)

    @staticmethod
    def _stop_and_close(cam: Any) -> None:
        for step in ("stop", "close"):
            try:
                getattr(cam, step)()
            except Exception as exc:
                log.warning("picamera2: %s failed: %s", step, exc)

    def close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            self._stop_and_close(cam)
