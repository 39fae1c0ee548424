"""Read a dataset in the ``training_set/<class>/``, ``test_set/<class>/`` layout into arrays.

Every image goes through :func:`edge.preprocess.read_image_file` and
:func:`edge.preprocess.resize_rgb`, the same functions the device uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from converter.errors import DatasetError
from edge.preprocess import INPUT_SIZE, read_image_file, resize_rgb

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Split:
    """One split: 64x64x3 uint8 images, 0/1 labels (1 = positive class) and their files."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int32]
    paths: tuple[Path, ...]
    class_names: tuple[str, ...]
    skipped: int = 0


def class_folders(split_dir: Path) -> list[Path]:
    """The class sub-folders of a split, sorted by name (as Keras did)."""
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: missing; expected a folder with one sub-folder per class")
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) != 2:
        names = [p.name for p in folders]
        raise DatasetError(f"{split_dir}: expected exactly 2 class sub-folders (e.g. acceptable/ and alert/), found {names}")
    return folders


def load_split(split_dir: Path, positive_class: str = "alert", skip_bad: bool = False) -> Split:
    """Load and preprocess every image of one split; raise :class:`DatasetError` on anything unusable."""
    folders = class_folders(split_dir)
    names = tuple(p.name for p in folders)
    if positive_class not in names:
        raise DatasetError(f"{split_dir}: positive class {positive_class!r} is not one of the class folders {list(names)}")
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    paths: list[Path] = []
    skipped = 0
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"{folder}: no images; every class needs at least one")
        for file in files:
            if file.suffix.lower() not in IMAGE_SUFFIXES and not skip_bad:
                raise DatasetError(f"{file}: not an image file (expected one of {sorted(IMAGE_SUFFIXES)}); use --skip-bad to skip it")
            try:
                pixels = resize_rgb(read_image_file(file))
            except ValueError as exc:
                if not skip_bad:
                    raise DatasetError(f"{exc}; use --skip-bad to skip unreadable files") from exc
                log.warning("skipping %s", exc)
                skipped += 1
                continue
            images.append(pixels)
            labels.append(1 if folder.name == positive_class else 0)
            paths.append(file)
        if not any(p.parent == folder or folder in p.parents for p in paths):
            raise DatasetError(f"{folder}: no readable images left after skipping bad files")
    if skipped:
        log.warning("%s: skipped %d unreadable file(s)", split_dir, skipped)
    stacked = np.stack(images) if images else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    return Split(stacked, np.asarray(labels, np.int32), tuple(paths), names, skipped)


def balanced_sample(split: Split, count: int, seed: int) -> npt.NDArray[np.uint8]:
    """Up to ``count`` images, half from each class, for quantization calibration."""
    rng = np.random.default_rng(seed)
    chosen: list[npt.NDArray[np.intp]] = []
    for label in (0, 1):
        idx = np.flatnonzero(split.labels == label)
        take = min(len(idx), (count + 1 - label) // 2)
        chosen.append(rng.choice(idx, size=take, replace=False))
    order = np.concatenate(chosen)
    rng.shuffle(order)
    return split.images[order]
