"""MJPEG frames: libjpeg-turbo decoding (full and DCT-scaled) and OpenCV handing frames over undecoded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from edge.config import OpenCVSource, parse_config
from edge.errors import ConfigError, SourceError
from edge.jpeg import JpegDecoder, is_jpeg, scale_for
from edge.simulator import still_frame
from edge.sources.opencv import OpenCVCamera


def jpeg_of(size: tuple[int, int], seed: int = 0, subsampling: str = "422") -> tuple[np.ndarray, bytes]:
    frame = still_frame(np.random.default_rng(seed), alert=seed % 2 == 1, size=size)
    return frame, simplejpeg.encode_jpeg(frame, quality=85, colorspace="RGB", colorsubsampling=subsampling)


@pytest.mark.parametrize(("width", "height", "min_side", "expected"), [
    (640, 480, None, 1), (640, 480, 480, 1), (640, 480, 240, 2), (640, 480, 128, 2), (640, 480, 120, 4),
    (640, 480, 60, 8), (640, 480, 16, 8), (1280, 720, 128, 4), (1280, 720, 64, 8), (100, 50, 200, 1)])
def test_scale_is_the_largest_reduction_keeping_the_shorter_side(width: int, height: int, min_side: int | None, expected: int) -> None:
    """1/2, 1/4, 1/8 while min(width, height) / divisor stays >= min_side; never above full size."""
    assert scale_for(width, height, min_side) == expected


@pytest.mark.parametrize("subsampling", ["420", "422", "444"])
def test_full_decode_is_pixel_identical_to_pillow(subsampling: str) -> None:
    """The training chain reads JPEGs with Pillow; the camera path decodes the same bytes to the same pixels."""
    _, data = jpeg_of((320, 240), subsampling=subsampling)
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(JpegDecoder().decode(data), pillow)


def test_reduced_decode_is_the_same_picture_at_a_fraction_of_the_size() -> None:
    """640x480 with min side 120 decodes to 160x120, whose block means match the full frame's."""
    _, data = jpeg_of((640, 480), seed=3)
    full = JpegDecoder().decode(data).astype(np.float64)
    decoder = JpegDecoder(min_side=120)
    small = decoder.decode(data).astype(np.float64)
    assert small.shape == (120, 160, 3) and decoder.last_scale == 4
    block_means = full.reshape(120, 4, 160, 4, 3).mean(axis=(1, 3))
    assert np.abs(block_means - small).mean() < 3.0  # DCT scaling is a low-pass of the same picture


def test_a_corrupt_frame_is_a_source_error_naming_its_size() -> None:
    """Bytes that are not a JPEG raise SourceError (no traceback), saying how many bytes came."""
    with pytest.raises(SourceError, match="not a decodable JPEG frame \\(5 bytes"):
        JpegDecoder().decode(b"\xff\xd8abc")
    assert is_jpeg(b"\xff\xd8\xff\xe0") and not is_jpeg(b"\x00\x00\x00\x01") and is_jpeg(np.frombuffer(b"\xff\xd8x", np.uint8))


def mjpeg_stream(path: Path, count: int, size: tuple[int, int]) -> list[bytes]:
    packets = [jpeg_of(size, seed=i)[1] for i in range(count)]
    path.write_bytes(b"".join(packets))
    return packets


def test_opencv_hands_over_mjpeg_frames_undecoded_and_edge_decodes_them(tmp_path: Path) -> None:
    """decode: jpeg reads a real MJPEG stream through OpenCV's FFmpeg backend; pixels equal libjpeg-turbo's."""
    packets = mjpeg_stream(tmp_path / "cam.mjpeg", 3, (320, 240))
    camera = OpenCVCamera(OpenCVSource(type="opencv", uri=str(tmp_path / "cam.mjpeg"), decode="jpeg", fps=200.0))
    camera.open()
    frames = [camera.read() for _ in range(3)]
    camera.close()
    for frame, packet in zip(frames, packets, strict=True):
        assert frame is not None and np.array_equal(frame.pixels, JpegDecoder().decode(packet))


def test_opencv_mjpeg_at_reduced_scale(tmp_path: Path) -> None:
    """decode_min_side: 120 turns 640x480 MJPEG frames into 160x120 RGB frames."""
    mjpeg_stream(tmp_path / "cam.mjpeg", 2, (640, 480))
    camera = OpenCVCamera(OpenCVSource(type="opencv", uri=str(tmp_path / "cam.mjpeg"), decode="jpeg", decode_min_side=120, fps=200.0))
    camera.open()
    frame = camera.read()
    camera.close()
    assert frame is not None and frame.pixels.shape == (120, 160, 3) and frame.pixels.dtype == np.uint8


def test_a_stream_that_is_not_mjpeg_is_refused_with_the_fix(tmp_path: Path) -> None:
    """An MPEG-4 video with decode: jpeg: SourceError telling the user to use decode: opencv."""
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    camera = OpenCVCamera(OpenCVSource(type="opencv", uri=str(path), decode="jpeg", fps=200.0))
    camera.open()
    with pytest.raises(SourceError, match="use decode: opencv"):
        camera.read()
    camera.close()


def test_decode_min_side_without_jpeg_decoding_is_a_config_error() -> None:
    """The option only means something with decode: jpeg; the error names the key."""
    with pytest.raises(ConfigError, match="source.*decode_min_side needs decode: jpeg"):
        parse_config({"source": {"type": "opencv", "uri": 0, "decode_min_side": 128}}, check_files=False)


@pytest.mark.parametrize(("dtype", "zero_point"), [("uint8", 0), ("int8", -128), ("int8", -100), ("uint8", 3)])
def test_quantize_into_equals_the_table_for_every_byte(dtype: str, zero_point: int) -> None:
    """The copy and XOR shortcuts give exactly the quantization table's values, for all 256 bytes."""
    from edge.preprocess import quantize_input, quantize_into

    pixels = np.tile(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)  # every byte value, in each channel
    out = np.empty(pixels.shape, dtype)
    quantize_into(out, pixels, 1 / 255, zero_point, dtype)
    assert np.array_equal(out, quantize_input(pixels, 1 / 255, zero_point, dtype))
