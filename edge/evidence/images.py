"""JPEG encoding and the ROI crops kept for training. Pure functions: arrays in, bytes or arrays out.

Pillow (a core dependency; its wheels carry libjpeg-turbo for x86-64 and aarch64) encodes. It is
imported on first use, so a daemon that never encodes never loads it.
"""

from __future__ import annotations

import io
import math

import numpy as np
import numpy.typing as npt

from edge.jpeg import optional_simplejpeg
from edge.preprocess import Box

Pixels = npt.NDArray[np.uint8]


def encode_jpeg(pixels: Pixels, quality: int = 85) -> bytes:
    """An HxWx3 uint8 RGB image as JPEG bytes."""
    contiguous = np.ascontiguousarray(pixels)
    simplejpeg = optional_simplejpeg()
    if simplejpeg is not None:  # libjpeg-turbo straight from the array, without importing Pillow
        return bytes(simplejpeg.encode_jpeg(contiguous, quality=quality, colorspace="RGB", colorsubsampling="420"))
    from PIL import Image

    out = io.BytesIO()
    # frombuffer shares the array's memory: no copy of the frame (megabytes at camera resolutions).
    image = Image.frombuffer("RGB", (contiguous.shape[1], contiguous.shape[0]), contiguous, "raw", "RGB", 0, 1)
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def shrink(pixels: Pixels, width: int) -> Pixels:
    """``pixels`` at most ``width`` wide (an integer step of rows and columns: cheap, and enough for a thumbnail)."""
    step = max(1, math.ceil(pixels.shape[1] / width))
    return pixels[::step, ::step] if step > 1 else pixels


def crop_bounds(height: int, width: int, box: Box) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) in pixels: the same rounding as the model's preprocessing
    (:func:`edge.preprocess.resize_rgb`), so a crop holds exactly the pixels the model samples from."""
    top = min(round(box.y * height), height - 1)
    left = min(round(box.x * width), width - 1)
    crop_h = max(1, min(round(box.height * height), height - top))
    crop_w = max(1, min(round(box.width * width), width - left))
    return top, left, crop_h, crop_w


def training_crop(frame: Pixels, box: Box, min_side: int) -> Pixels:
    """The ROI's pixels, enlarged by a whole factor (each pixel repeated) until the shorter side is >= ``min_side``.

    Repeating pixels by a whole factor k keeps the 64x64 model input exact: nearest sampling at pixel
    centres of the enlarged crop, ``floor((2i+1) * k * n / 128) // k``, picks the same source pixel as
    sampling the original, ``floor((2i+1) * n / 128)``. Larger future models get at least ``min_side``.
    A turned box (flow down the picture) gives its crop turned, as the model sees it: a model trained on
    these crops learns the flow across.
    """
    top, left, crop_h, crop_w = crop_bounds(frame.shape[0], frame.shape[1], box)
    crop = frame[top:top + crop_h, left:left + crop_w]
    if box.turned:
        crop = crop.transpose(1, 0, 2)
    factor = max(1, math.ceil(min_side / min(crop_h, crop_w)))
    if factor > 1:
        crop = np.repeat(np.repeat(crop, factor, axis=0), factor, axis=1)
    return np.ascontiguousarray(crop)
