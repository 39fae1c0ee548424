"""USB/V4L2 cameras, RTSP/HTTP IP cameras and video files through OpenCV (imported lazily)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import OpenCVSource
from edge.errors import SourceError
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
        pixels = np.ascontiguousarray(bgr[:, :, ::-1]) if bgr.ndim == 3 and bgr.shape[2] == 3 else bgr
        frame = Frame(pixels, self._seq, time.monotonic(), time.time())
        self._seq += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
