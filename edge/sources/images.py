"""Replay a folder of image files as a camera (sorted by name; once or looping).

``realtime: true`` paces the files at ``fps``; ``realtime: false`` reads them as fast as the daemon takes them and
stamps each with the time it was taken at (``seq / fps`` after the start), so that a recorded stream replayed in
seconds is judged as if it ran at its own frame rate.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge.config import ImagesSource
from edge.errors import SourceError
from edge.preprocess import read_image_file
from edge.sources.base import Frame, Pacer

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}


class FolderReplay:
    """Frames from image files; an unreadable file raises SourceError naming it."""

    name = "images"

    def __init__(self, config: ImagesSource) -> None:
        self.config = config
        self._files: list[Path] = []
        self._index = 0
        self._seq = 0
        self._pacer = Pacer(config.fps)
        self._t0_mono, self._t0_wall = time.monotonic(), time.time()

    def open(self) -> None:
        folder = Path(self.config.folder)
        if not folder.is_dir():
            raise SourceError(f"{folder}: image folder not found")
        self._files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not self._files:
            raise SourceError(f"{folder}: no image files ({', '.join(sorted(SUFFIXES))})")
        self._index = 0

    def read(self) -> Frame | None:
        if self._index >= len(self._files):
            if not self.config.loop:
                return None
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        if self.config.realtime:
            self._pacer.wait()
        try:
            pixels = read_image_file(path)
        except ValueError as exc:
            raise SourceError(str(exc)) from exc
        if self.config.realtime:
            mono, wall = time.monotonic(), time.time()
        else:  # stream time: every window, dwell and rate sees the frames as the camera took them
            t = self._seq / self.config.fps
            mono, wall = self._t0_mono + t, self._t0_wall + t
        frame = Frame(pixels, self._seq, mono, wall)
        self._seq += 1
        return frame

    def close(self) -> None:
        self._files = []
