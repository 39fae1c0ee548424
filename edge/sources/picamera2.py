"""The Raspberry Pi camera through Picamera2 (apt's python3-picamera2), imported when the source is built.

The stream is configured close to what the model needs: a small ``main`` stream in
``BGR888``, which Picamera2 delivers as [R, G, B] bytes per pixel (its manual, Appendix A:
``RGB888`` would be [B, G, R]), so frames go to preprocessing with no conversion. The ISP
scales to that size, so there is no second (``lores``) stream and no YUV conversion on the CPU.

Versions that matter, checked against Picamera2's and libcamera's source:

* Picamera2 >= 0.3.20. Before it, ``capture_array(wait=2.0)`` ignored the number and
  blocked until a frame came (``dispatch_functions`` called ``job.get_result()`` with no
  timeout), and ``cancel_all_and_flush()`` did not exist: an unplugged cable hung the frame
  loop until the systemd watchdog killed the process. Older versions are refused when the
  source is built, so ``edge-daemon run`` exits 2 and ``check-config`` reports it.
* libcamera 0.5 split ``AeEnable`` into ``ExposureTimeMode`` and ``AnalogueGainMode`` (Manual
  = 1); ``AeEnable`` became a wrapper that 0.5.0 and 0.5.1 translate only for queued requests,
  not for the controls given at start, so the IPA logs "Ctrl AeEnable is not handled" and
  exposure stays automatic (picamera2 issue #1269; fixed by ``Camera::patchControlList`` in
  libcamera 0.5.2). The adapter therefore sets the mode controls when the camera advertises
  them and ``AeEnable`` only when it does not (libcamera < 0.5). Picamera2 >= 0.3.27 sets the
  same modes itself whenever ``ExposureTime``/``AnalogueGain`` are given; setting them here
  too agrees with it and covers 0.3.20-0.3.26 on a newer libcamera.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import time
from collections.abc import Callable, Collection
from typing import Any

from edge.config import Picamera2Source
from edge.errors import ConfigError, SourceError
from edge.sources.base import Frame

log = logging.getLogger(__name__)

MIN_VERSION = (0, 3, 20)
MANUAL = 1  # libcamera's ExposureTimeModeManual and AnalogueGainModeManual
UPGRADE_HINT = "sudo apt update && sudo apt install python3-picamera2"


def version_problem(version: str | None, has_cancel_all_and_flush: bool) -> str | None:
    """Why this Picamera2 cannot be used, or None. ``version`` is its distribution version, if known."""
    minimum = ".".join(map(str, MIN_VERSION))
    if version is not None:
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
        if match and tuple(int(part) for part in match.groups()) < MIN_VERSION:
            return (f"source.type: picamera2 {version} is too old; conveyor-watch needs >= {minimum} "
                    f"(capture timeouts and cancel_all_and_flush): {UPGRADE_HINT}")
    if not has_cancel_all_and_flush:  # an install without metadata, or a version string we cannot read
        return (f"source.type: this Picamera2 ({version or 'version unknown'}) has no cancel_all_and_flush(); "
                f"conveyor-watch needs picamera2 >= {minimum}: {UPGRADE_HINT}")
    return None


def load_picamera2() -> Callable[[int], Any]:
    """The ``Picamera2`` class, after checking it is new enough; :class:`ConfigError` if it cannot be used."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise ConfigError([
            f"source.type: 'picamera2' needs Picamera2 ({exc}): {UPGRADE_HINT} "
            "(the service's venv sees it through --system-site-packages)"
        ]) from None
    except Exception as exc:  # libcamera's bindings raise RuntimeError/OSError when they cannot load
        raise ConfigError([f"source.type: Picamera2 failed to import ({exc.__class__.__name__}: {exc})"]) from None
    try:
        version: str | None = importlib.metadata.version("picamera2")
    except importlib.metadata.PackageNotFoundError:
        version = None
    problem = version_problem(version, hasattr(Picamera2, "cancel_all_and_flush"))
    if problem is not None:
        raise ConfigError([problem])
    return Picamera2  # type: ignore[no-any-return]


class PiCamera:
    """Frames from a Picamera2 object.

    ``factory`` makes the camera object from its number; by default the real ``Picamera2``
    class, loaded and version-checked here (so a missing or old library fails when the
    daemon is assembled, not at the first frame). Tests pass a stand-in.
    """

    name = "picamera2"

    def __init__(self, config: Picamera2Source, factory: Callable[[int], Any] | None = None) -> None:
        self.config = config
        self._factory = factory if factory is not None else load_picamera2()
        self._cam: Any = None
        self._seq = 0

    def controls(self, advertised: Collection[str]) -> dict[str, Any]:
        """libcamera controls for the frame rate and any fixed exposure, gain and white balance.

        ``advertised`` is what the camera offers (``Picamera2.camera_controls``): Picamera2
        refuses a control the camera does not advertise, and which exposure controls exist
        depends on the libcamera version.
        """
        c = self.config
        controls: dict[str, Any] = {"FrameRate": c.fps}
        if c.exposure_us is not None:
            controls["ExposureTime"] = c.exposure_us
        if c.analogue_gain is not None:
            controls["AnalogueGain"] = c.analogue_gain
        if "ExposureTimeMode" in advertised or "AnalogueGainMode" in advertised:  # libcamera >= 0.5
            if c.exposure_us is not None and "ExposureTimeMode" in advertised:
                controls["ExposureTimeMode"] = MANUAL
            if c.analogue_gain is not None and "AnalogueGainMode" in advertised:
                controls["AnalogueGainMode"] = MANUAL
        elif c.exposure_us is not None or c.analogue_gain is not None:
            controls["AeEnable"] = False  # libcamera < 0.5: one switch fixes exposure and gain together
        if c.awb_gains is not None:
            controls["AwbEnable"] = False
            controls["ColourGains"] = (c.awb_gains[0], c.awb_gains[1])
        return controls

    def open(self) -> None:
        c = self.config
        try:
            cam = self._factory(c.camera)
            size = (int(c.size[0]), int(c.size[1]))
            video = cam.create_video_configuration(
                main={"size": size, "format": "BGR888"}, buffer_count=4, controls=self.controls(cam.camera_controls)
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
            # A number: Picamera2 >= 0.3.20 raises TimeoutError (concurrent.futures') after that many seconds.
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
