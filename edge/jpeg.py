"""JPEG frames (MJPEG cameras) decoded by libjpeg-turbo, optionally straight to a reduced size.

The model sees 64x64 crops, so decoding a 1280x720 frame in full wastes most of the work.
libjpeg-turbo can scale in the inverse DCT (1/2, 1/4, 1/8), skipping most of the IDCT and colour
conversion; :func:`scale_for` picks the largest reduction that keeps the frame's shorter side at
or above ``min_side`` pixels. Entropy (Huffman) decoding is not skipped by scaling and is the
floor of the cost: benchmarks/camera.py measures full and scaled decodes side by side.

Reduced-scale decoding averages each 2x2/4x4/8x8 block (the DCT's low frequencies), which is not
the same pixels as full decoding followed by nearest-neighbour sampling: it is opt-in
(``source.decode_min_side``), and the benchmark reports how far the model's output moves.

simplejpeg (a maintained binding with x86-64 and aarch64 wheels) is imported lazily, so the
package imports without it; the ``camera`` extra installs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import SourceError

SCALES = (1, 2, 4, 8)


def optional_simplejpeg() -> Any | None:
    """simplejpeg when installed, else None (callers that can fall back to Pillow use this)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def _simplejpeg() -> Any:
    module = optional_simplejpeg()
    if module is None:
        raise SourceError("JPEG decoding needs simplejpeg: pip install 'conveyor-watch[camera]'")
    return module


def is_jpeg(data: bytes | npt.NDArray[np.uint8]) -> bool:
    """True when ``data`` starts with the JPEG start-of-image marker."""
    head = bytes(memoryview(data)[:2]) if not isinstance(data, np.ndarray) else data.reshape(-1)[:2].tobytes()
    return head == b"\xff\xd8"


def scale_for(width: int, height: int, min_side: int | None) -> int:
    """The largest DCT scale divisor (1, 2, 4 or 8) that keeps ``min(width, height) / divisor >= min_side``."""
    if not min_side:
        return 1
    shorter = min(width, height)
    return max(s for s in SCALES if -(-shorter // s) >= min_side or s == 1)


class JpegDecoder:
    """Decodes JPEG bytes to HxWx3 uint8 RGB, reduced by libjpeg-turbo's DCT scaling when allowed."""

    def __init__(self, min_side: int | None = None) -> None:
        self.min_side = min_side
        self._jpeg = _simplejpeg()
        self.last_scale = 1

    def decode(self, data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Decode one frame; :class:`SourceError` naming the problem if it is not a readable JPEG."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        try:
            height, width, _, _ = self._jpeg.decode_jpeg_header(raw)
            scale = scale_for(width, height, self.min_side)
            # simplejpeg picks the smallest scaled size at or above the minimums: ask for exactly ours.
            pixels = self._jpeg.decode_jpeg(raw, colorspace="RGB", min_height=-(-height // scale), min_width=-(-width // scale))
        except ValueError as exc:
            raise SourceError(f"not a decodable JPEG frame ({len(raw)} bytes: {exc})") from exc
        self.last_scale = scale
        result: npt.NDArray[np.uint8] = np.asarray(pixels, dtype=np.uint8)
        return result
