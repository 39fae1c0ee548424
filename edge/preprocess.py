"""The one image preprocessing function shared by training, evaluation and the device.

Every model input is made by :func:`model_input`: take the RGB uint8 frame, cut the
region of interest, resize it to 64x64 by **nearest neighbour at pixel centres**, and
map each byte through the model's input quantization. Nearest neighbour was chosen
deliberately: it is what Keras' ``flow_from_directory`` used by default (so the
original model was trained on it), it is exact integer indexing (so the workstation
and the Pi produce bit-identical tensors), and it costs microseconds on a Pi where an
area filter over a 640x480 frame costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

INPUT_SIZE = 64
RESIZE_METHOD = "nearest-pixel-centre"
COLOR_ORDER = "RGB"
# The float model sees pixel / 255, as ImageDataGenerator(rescale=1/255) gave it.
PIXEL_SCALE = 1.0 / 255.0
SCALING = "real = pixel / 255; quantized = round(real / input.scale) + input.zero_point (edge.preprocess)"
# What a model card's "preprocessing" must say for this device to feed the model correctly.
PREPROCESSING = {"size": (INPUT_SIZE, INPUT_SIZE), "resize": RESIZE_METHOD, "color_order": COLOR_ORDER, "scaling": SCALING}
# Full scale of the integer image modes Pillow decodes to, by their bit depth.
_FULL_SCALE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}

Uint8Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Box:
    """A region of interest in fractions of the frame: left, top, width, height."""

    x: float = 0.0
    y: float = 0.0
    width: float = 1.0
    height: float = 1.0
    # Turned a quarter (transposed) after cutting: a flow that runs down the picture reaches the model
    # running across it, as most of its training frames do.
    turned: bool = False

    @classmethod
    def of_roi(cls, box: Sequence[float], flow: str) -> Box:
        """A config ROI's box (x, y, width, height) and flow ("across" or "down")."""
        x, y, width, height = box
        return cls(x, y, width, height, turned=flow == "down")


WHOLE_FRAME = Box()


def crop_bounds(frame_h: int, frame_w: int, box: Box) -> tuple[int, int, int, int]:
    """The box's pixels in a frame: top, left, height, width. Any box the config accepts gives a crop of at least one
    pixel inside the frame, even a sliver at the right or bottom edge that rounds to the frame's width or height."""
    top = min(round(box.y * frame_h), frame_h - 1)
    left = min(round(box.x * frame_w), frame_w - 1)
    return top, left, max(1, min(round(box.height * frame_h), frame_h - top)), max(1, min(round(box.width * frame_w), frame_w - left))


@lru_cache(maxsize=64)
def _sample_indices(
    frame_h: int, frame_w: int, box: Box, size: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    top, left, crop_h, crop_w = crop_bounds(frame_h, frame_w, box)
    # Pixel-centre sampling: output pixel i takes source pixel floor((i + 0.5) * n / size).
    rows = top + (np.arange(size) * 2 + 1) * crop_h // (2 * size)
    cols = left + (np.arange(size) * 2 + 1) * crop_w // (2 * size)
    return rows.astype(np.intp), cols.astype(np.intp)


def as_rgb(image: npt.NDArray[np.generic]) -> Uint8Image:
    """Return ``image`` as an HxWx3 uint8 RGB array (greyscale is replicated, alpha dropped)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return image  # type: ignore[return-value]
    raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")


def resize_rgb(frame: Uint8Image, box: Box = WHOLE_FRAME, size: int = INPUT_SIZE) -> Uint8Image:
    """Cut ``box`` out of an HxWx3 uint8 frame and resize it to size x size (nearest, pixel centres)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 frame, got {frame.dtype} {frame.shape}")
    rows, cols = _sample_indices(frame.shape[0], frame.shape[1], box, size)
    # Two 1-D takes pick the same pixels as frame[rows[:, None], cols] at a third of the cost.
    crop = frame.take(rows, axis=0).take(cols, axis=1)
    return crop.transpose(1, 0, 2) if box.turned else crop  # a view: callers copy the crop into their own buffer


@lru_cache(maxsize=16)
def quantization_table(scale: float, zero_point: int, dtype: str) -> npt.NDArray[np.generic]:
    """Map every byte value 0..255 to the model's quantized input value.

    The model was trained on ``pixel / 255``; TFLite quantizes a real value r as
    ``round(r / scale) + zero_point``. With the usual calibration (scale 1/255,
    zero point 0, uint8) this table is the identity and the camera bytes go in as they are.
    """
    info = np.iinfo(np.dtype(dtype))
    real = np.arange(256, dtype=np.float64) * PIXEL_SCALE
    quantized = np.round(real / scale) + zero_point
    return np.clip(quantized, info.min, info.max).astype(dtype)


def quantize_input(rgb64: Uint8Image, scale: float, zero_point: int, dtype: str) -> npt.NDArray[np.generic]:
    """Turn 64x64x3 uint8 pixels into the model's integer input tensor values."""
    table = quantization_table(float(scale), int(zero_point), dtype)
    return table[rgb64]


def quantize_into(out: npt.NDArray[np.generic], rgb64: Uint8Image, scale: float, zero_point: int, dtype: str) -> None:
    """Write :func:`quantize_input` of ``rgb64`` into ``out`` by the cheapest exact route.

    The two usual calibrations need no table: uint8 with scale 1/255 and zero point 0 is the
    identity, and int8 with scale 1/255 and zero point -128 is ``p - 128``, which is the byte with its
    top bit flipped, read as int8 (one XOR: about 1 us for 64x64x3 where a table lookup costs
    about 10 us). Anything else goes through the table. Same values as :func:`quantize_input`, always.
    """
    route = _route(float(scale), int(zero_point), dtype)
    if route == "copy":
        out[...] = rgb64
    elif route == "xor":
        np.bitwise_xor(rgb64, np.uint8(0x80), out=out.view(np.uint8))
    else:
        out[...] = quantization_table(float(scale), int(zero_point), dtype)[rgb64]


@lru_cache(maxsize=16)
def _route(scale: float, zero_point: int, dtype: str) -> str:
    table = quantization_table(scale, zero_point, dtype)
    if dtype == "uint8" and np.array_equal(table, np.arange(256, dtype=np.uint8)):
        return "copy"
    if dtype == "int8" and np.array_equal(table, (np.arange(256, dtype=np.int16) - 128).astype(np.int8)):
        return "xor"
    return "table"


def model_input(
    frame: Uint8Image, scale: float, zero_point: int, dtype: str, box: Box = WHOLE_FRAME
) -> npt.NDArray[np.generic]:
    """The complete preprocessing: crop, resize, quantize. Training, evaluation and the device all call this."""
    return quantize_input(resize_rgb(frame, box), scale, zero_point, dtype)


def _to_bytes(img: object, path: Path) -> Uint8Image:
    """8-bit RGB from a decoded Pillow image, scaling deep images by their bit depth (not their own peak),
    so a dark 16-bit frame stays dark."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    if img.mode in _FULL_SCALE:
        arr = np.asarray(img, dtype=np.float64) / _FULL_SCALE[img.mode]
    elif img.mode == "I":  # 32-bit integer mode: Pillow uses it for 16-bit data in some formats
        arr = np.asarray(img, dtype=np.float64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError(f"{path}: 32-bit integer pixels outside 0-65535 are not supported; save it as 8 or 16 bits")
        arr = arr / 65535.0
    elif img.mode == "F":  # float images: 0-1 when they fit, else 0-255, else 16-bit counts
        arr = np.asarray(img, dtype=np.float64)
        peak = float(np.nanmax(arr)) if arr.size else 0.0
        arr = arr / (1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0)
    else:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    return as_rgb((np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).round().astype(np.uint8))


def _plain_jpeg(path: Path) -> Uint8Image | None:
    """A baseline YCbCr or greyscale JPEG without EXIF (nothing to turn upright), decoded by libjpeg-turbo
    straight into the array (simplejpeg, when installed): the same pixels as Pillow's decode, without
    Pillow's import (about 4 MB resident) and its intermediate copies (about 4 MB per 640x480 frame).
    None: let Pillow read it."""
    from edge.jpeg import is_jpeg, optional_simplejpeg

    simplejpeg = optional_simplejpeg() if path.suffix.lower() in (".jpg", ".jpeg") else None
    if simplejpeg is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None  # Pillow's path names the problem
    if not is_jpeg(data) or b"Exif\x00\x00" in data[:65536]:
        return None
    try:
        if simplejpeg.decode_jpeg_header(data)[2] not in ("YCbCr", "Gray"):
            return None
        pixels: Uint8Image = np.asarray(simplejpeg.decode_jpeg(data, colorspace="RGB"), dtype=np.uint8)
        return pixels
    except ValueError:
        return None


def read_image_file(path: Path) -> Uint8Image:
    """Decode an image file (any size or mode Pillow reads) to HxWx3 uint8 RGB, upright.

    The EXIF orientation tag is applied (phone photos are stored sideways with a tag saying so);
    16-bit images are scaled by their bit depth. Raises ``ValueError`` naming the file when it is
    not a readable image.
    """
    plain = _plain_jpeg(path)
    if plain is not None:
        return plain
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            return _to_bytes(upright, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from exc
