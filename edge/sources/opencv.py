"""USB/V4L2 cameras, RTSP/HTTP IP cameras and video files through OpenCV (imported lazily).

With ``decode: jpeg`` OpenCV hands over the camera's MJPEG frames undecoded and :mod:`edge.jpeg`
decodes them (optionally at reduced scale): a V4L2 camera is asked for MJPG with
``CAP_PROP_CONVERT_RGB = 0`` (its buffer is then copied out as is), a file or network stream is
read with ``CAP_PROP_FORMAT = -1`` (FFmpeg's raw packets). A stream whose frames are not JPEG
(H.264, say) is refused at open with a message naming ``decode: opencv``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import OpenCVSource
from edge.errors import SourceError
from edge.jpeg import JpegDecoder, is_jpeg
from edge.sources.base import Frame, Pacer


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise SourceError("source type 'opencv' needs OpenCV: pip install 'conveyor-watch[camera]'") from exc
    return cv2


class OpenCVCamera:
    """Frames from ``cv2.VideoCapture``, converted from OpenCV's BGR to RGB."""

    name = "opencv"

    def __init__(self, config: OpenCVSource) -> None:
        self.config = config
        self._cap: Any = None
        self._seq = 0
        self._is_file = isinstance(config.uri, str) and Path(config.uri).is_file()
        file_fps = config.fps or 25.0
        self._pacer = Pacer(file_fps)
        self._decoder: JpegDecoder | None = None

    def open(self) -> None:
        cv2 = _import_cv2()
        uri: Any = self.config.uri
        if isinstance(uri, str) and uri.startswith("/dev/video") and uri[len("/dev/video"):].isdigit():
            uri = int(uri[len("/dev/video"):])
        timeout_ms = int(self.config.read_timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        cap = cv2.VideoCapture(uri, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"opencv: cannot open {self.config.uri!r}")
        if self.config.decode == "jpeg":
            self._decoder = JpegDecoder(self.config.decode_min_side)
            if isinstance(uri, int):  # V4L2: ask for MJPEG and for the buffer as delivered
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
                cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
            elif not cap.set(cv2.CAP_PROP_FORMAT, -1):  # FFmpeg: raw packets
                cap.release()
                raise SourceError(f"opencv: {self.config.uri!r}: this backend cannot hand over undecoded frames; use decode: opencv")
        if self.config.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
        if self.config.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        if self.config.fps and not self._is_file:
            cap.set(cv2.CAP_PROP_FPS, self.config.fps)
        if self._is_file and not self.config.fps:
            native = cap.get(cv2.CAP_PROP_FPS)
            self._pacer = Pacer(native if 0 < native < 1000 else 25.0)
        self._cap = cap

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError("opencv: source is not open")
        if self._is_file:
            self._pacer.wait()
        ok, bgr = self._cap.read()
        if not ok and self._is_file:
            if not self.config.loop:
                return None
            cv2 = _import_cv2()
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise SourceError(f"opencv: read from {self.config.uri!r} failed or timed out")
        if self._decoder is not None:
            pixels = self._decode(bgr)
        else:
            pixels = np.ascontiguousarray(bgr[:, :, ::-1]) if bgr.ndim == 3 and bgr.shape[2] == 3 else bgr
        frame = Frame(pixels, self._seq, time.monotonic(), time.time())
        self._seq += 1
        return frame

    def _decode(self, buffer: Any) -> Any:
        assert self._decoder is not None
        if not is_jpeg(buffer):
            raise SourceError(f"opencv: {self.config.uri!r} does not deliver JPEG frames (MJPEG); use decode: opencv")
        try:
            return self._decoder.decode(buffer)
        except SourceError as exc:
            raise SourceError(f"opencv: {self.config.uri!r}: {exc}") from exc

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
