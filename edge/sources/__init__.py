"""Frame sources: one small interface, one module per kind of camera.

A source is opened, read until it returns ``None`` (end of a finite stream), and closed.
Failures raise :class:`edge.errors.SourceError`; the daemon decides whether to reopen.
"""

from __future__ import annotations

from edge.config import ImagesSource, OpenCVSource, Picamera2Source, SyntheticSource
from edge.sources.base import Frame, FrameSource, Pacer


def open_source(config: SyntheticSource | ImagesSource | OpenCVSource | Picamera2Source) -> FrameSource:
    """Build (not yet open) the source the config names; hardware libraries load only here."""
    if isinstance(config, SyntheticSource):
        from edge.sources.synthetic import SyntheticCamera

        return SyntheticCamera(config)
    if isinstance(config, ImagesSource):
        from edge.sources.images import FolderReplay

        return FolderReplay(config)
    if isinstance(config, OpenCVSource):
        from edge.sources.opencv import OpenCVCamera

        return OpenCVCamera(config)
    from edge.sources.picamera2 import PiCamera

    return PiCamera(config)


__all__ = ["Frame", "FrameSource", "Pacer", "open_source"]
