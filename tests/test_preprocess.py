"""The shared preprocessing: one function, the same bytes on the workstation and the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converter.dataset import check_layout, load_split
from edge.config import ImagesSource, parse_config
from edge.inference import Classifier, load_runtime
from edge.pipeline import Pipeline
from edge.preprocess import Box, _plain_jpeg, model_input, quantization_table, read_image_file, resize_rgb
from edge.simulator import still_frame
from edge.sources.images import FolderReplay

BUNDLED = Path(__file__).resolve().parent.parent / "edge" / "models" / "conveyor_int8.tflite"


def test_resize_samples_pixel_centres() -> None:
    """A 128-wide ramp resized to 64 picks every second pixel starting at index 1 (the centre rule)."""
    ramp = np.tile(np.arange(128, dtype=np.uint8)[None, :, None], (128, 1, 3))
    out = resize_rgb(ramp)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert list(out[0, :4, 0]) == [1, 3, 5, 7]


def test_roi_box_crops_before_resizing() -> None:
    """The right half of a half-black, half-white frame is all white."""
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, 100:] = 255
    assert resize_rgb(frame, Box(0.5, 0.0, 0.5, 1.0)).min() == 255
    assert resize_rgb(frame, Box(0.0, 0.0, 0.5, 1.0)).max() == 0


def test_quantization_table_is_identity_for_the_usual_calibration_and_exact_otherwise() -> None:
    """scale 1/255, zero point 0 maps bytes to themselves; int8 with zp -128 shifts by 128."""
    assert np.array_equal(quantization_table(1 / 255, 0, "uint8"), np.arange(256))
    assert np.array_equal(quantization_table(1 / 255, -128, "int8"), np.arange(256) - 128)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_any_image_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    """Greyscale, RGBA, palette and 16-bit files all decode to HxWx3 uint8."""
    rgb = still_frame(np.random.default_rng(1), alert=False, size=(96, 72))
    img = Image.fromarray(rgb)
    img = img.convert("L").convert("I;16") if mode == "I;16" else img.convert(mode)
    path = tmp_path / f"x_{mode.replace(';', '')}.png"
    img.save(path)
    out = read_image_file(path)
    assert out.shape == (72, 96, 3) and out.dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A phone JPEG stored landscape with orientation 6 (rotate 90 degrees clockwise) loads upright, portrait."""
    pixels = np.zeros((60, 100, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)  # a red stripe down the stored image's left edge
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, quality=95, exif=exif)
    out = read_image_file(path)
    assert out.shape == (100, 60, 3)
    assert out[:10, :, 0].mean() > 200 and out[-10:, :, 0].mean() < 60  # the stripe is now along the top


@pytest.mark.parametrize("options", [{"subsampling": 2, "quality": 85}, {"subsampling": 0, "quality": 92},
                                     {"progressive": True, "quality": 75}, {"grey": True, "quality": 85}])
def test_plain_jpegs_decode_to_the_same_pixels_as_pillow(tmp_path: Path, options: dict) -> None:  # type: ignore[type-arg]
    """JPEGs without EXIF go to libjpeg-turbo through simplejpeg (no Pillow import on the device); the
    training side may read them with Pillow: the input tensors must not depend on which decoded them."""
    rgb = still_frame(np.random.default_rng(2), alert=False, size=(160, 120))
    grey = options.pop("grey", False)
    img = Image.fromarray(rgb).convert("L") if grey else Image.fromarray(rgb)
    path = tmp_path / "plain.jpg"
    img.save(path, **options)
    assert _plain_jpeg(path) is not None  # the simplejpeg path is the one under test
    out = read_image_file(path)
    with Image.open(path) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert out.shape == expected.shape and np.array_equal(out, expected)


def test_16_bit_images_are_scaled_by_bit_depth_not_their_own_peak(tmp_path: Path) -> None:
    """A dark 16-bit frame (peak 4096 of 65535) stays dark: 4096 -> 16, not stretched to 255."""
    deep = np.full((40, 40), 4096, np.uint16)
    deep[0, 0] = 0
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    assert Image.open(path).mode.startswith("I;16")
    out = read_image_file(path)
    assert out.dtype == np.uint8 and int(out[5, 5, 0]) == round(4096 / 65535 * 255) and int(out[0, 0, 0]) == 0


def test_unreadable_file_names_itself(tmp_path: Path) -> None:
    """A corrupt image raises ValueError naming the path."""
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        read_image_file(bad)


def test_training_path_and_device_path_give_bit_identical_input_tensors(tmp_path: Path) -> None:
    """The same files through the converter's loader and the device's folder source + pipeline: same bytes."""
    rng = np.random.default_rng(5)
    for label in ("acceptable", "alert"):
        folder = tmp_path / "test_set" / label
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(still_frame(rng, alert=label == "alert")).save(folder / f"{label}{i}.jpg", quality=80)
    split = load_split(check_layout(tmp_path, need_training=False), "test_set")
    classifier = Classifier.from_files(BUNDLED, load_runtime("auto"))
    card = classifier.card
    training_side = [model_input(_load(p), card.input.scale, card.input.zero_point, card.input.dtype) for p in split.paths]
    assert all(np.array_equal(a, b) for a, b in zip(training_side,
               [np.asarray(x) for x in (quantization_table(card.input.scale, card.input.zero_point, card.input.dtype)[i]
                                        for i in split.images)], strict=True))
    config = parse_config({"source": {"type": "images", "folder": str(tmp_path / "test_set"), "realtime": False,
                                      "loop": False}}, check_files=False)
    assert isinstance(config.source, ImagesSource)
    source = FolderReplay(config.source)
    source.open()
    pipeline = Pipeline(config, classifier)
    device_side = []
    while (frame := source.read()) is not None:
        pipeline.process(frame)
        device_side.append(pipeline._batch[0].copy())
    source.close()
    assert len(device_side) == len(training_side) == 6
    for train_tensor, device_tensor in zip(training_side, device_side, strict=True):
        assert train_tensor.dtype == device_tensor.dtype == np.uint8
        assert np.array_equal(train_tensor, device_tensor)


def _load(path: Path) -> np.ndarray:
    return read_image_file(path)
