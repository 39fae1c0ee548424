"""Read a dataset folder into arrays, checking it first (without TensorFlow) so mistakes are reported fast.

Layout (Keras' ``flow_from_directory`` layout, extended)::

    data/training_set/<negative>/ <positive>/ [unknown/]
    data/validation_set/...        optional; otherwise a stratified share of training_set
    data/test_set/...              never used for training, validation or threshold choice
    data/manifest.jsonl            optional: what each file shows (written by ``synth``)

The two class folders are the alert classes (``--positive-class``, default ``alert``); an optional
``unknown/`` folder holds frames that are not a belt with product (hands, covered lens, walls, ...)
for the scene head. Every image goes through :func:`edge.preprocess.read_image_file` and
:func:`edge.preprocess.resize_rgb`, the same functions the device uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.errors import DatasetError
from edge.preprocess import INPUT_SIZE, read_image_file, resize_rgb

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
UNKNOWN_CLASS = "unknown"
TRAIN, VALIDATION, TEST = "training_set", "validation_set", "test_set"


@dataclass(frozen=True)
class Split:
    """One split: 64x64x3 uint8 images, 0/1 alert labels, 0/1 unknown-scene flags, and their files.

    ``labels`` is 0 for unknown scenes (they have no alert label; training ignores it for them).
    ``kinds`` names what each image shows when the dataset has a manifest (else the class name).
    """

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int32]
    unknown: npt.NDArray[np.int32]
    paths: tuple[Path, ...]
    class_names: tuple[str, ...]
    kinds: tuple[str, ...] = ()
    skipped: int = 0

    @property
    def belt(self) -> npt.NDArray[np.bool_]:
        """Mask of the belt frames (the ones with an alert label)."""
        return self.unknown == 0

    def subset(self, index: npt.NDArray[np.intp]) -> Split:
        return replace(self, images=self.images[index], labels=self.labels[index], unknown=self.unknown[index],
                       paths=tuple(self.paths[i] for i in index), kinds=tuple(self.kinds[i] for i in index) if self.kinds else ())


@dataclass(frozen=True)
class Layout:
    """The checked folder layout of a dataset: class names and the files of each split."""

    root: Path
    class_names: tuple[str, ...]
    positive_class: str
    files: dict[str, dict[str, list[Path]]]  # split -> class folder -> files

    @property
    def has_validation(self) -> bool:
        return VALIDATION in self.files

    @property
    def has_unknown(self) -> bool:
        return any(UNKNOWN_CLASS in classes for classes in self.files.values())


def class_folders(split_dir: Path) -> tuple[list[Path], Path | None]:
    """The two alert-class sub-folders of a split (sorted by name, as Keras did) and the optional unknown/ folder."""
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: missing; expected a folder with one sub-folder per class")
    folders = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = next((p for p in folders if p.name == UNKNOWN_CLASS), None)
    classes = [p for p in folders if p.name != UNKNOWN_CLASS]
    if len(classes) != 2:
        names = [p.name for p in classes]
        raise DatasetError(f"{split_dir}: expected exactly 2 class sub-folders (e.g. acceptable/ and alert/) besides an optional "
                           f"unknown/, found {names}")
    return classes, unknown


def _files(folder: Path, skip_bad: bool) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"{folder}: no images; every class needs at least one")
    for file in files:
        if file.suffix.lower() not in IMAGE_SUFFIXES and not skip_bad:
            raise DatasetError(f"{file}: not an image file (expected one of {sorted(IMAGE_SUFFIXES)}); use --skip-bad to skip it")
    return [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]


def check_layout(data_dir: Path, positive_class: str = "alert", skip_bad: bool = False, need_training: bool = True) -> Layout:
    """Check the folder layout and file names (no decoding, no TensorFlow); :class:`DatasetError` on any problem."""
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: dataset folder not found (expected training_set/ and test_set/ inside)")
    splits = [TRAIN, VALIDATION, TEST] if need_training else [TEST]
    files: dict[str, dict[str, list[Path]]] = {}
    names: tuple[str, ...] | None = None
    for split in splits:
        split_dir = data_dir / split
        if split == VALIDATION and not split_dir.exists():
            continue
        classes, unknown = class_folders(split_dir)
        split_names = tuple(p.name for p in classes)
        if positive_class not in split_names:
            raise DatasetError(f"{split_dir}: positive class {positive_class!r} is not one of the class folders {list(split_names)}")
        if names is not None and split_names != names:
            raise DatasetError(f"{data_dir}: {split} classes {list(split_names)} differ from {splits[0]} classes {list(names)}")
        names = split_names
        files[split] = {folder.name: _files(folder, skip_bad) for folder in classes}
        if unknown is not None:
            files[split][UNKNOWN_CLASS] = _files(unknown, skip_bad)
    assert names is not None
    return Layout(data_dir, names, positive_class, files)


def _manifest(data_dir: Path) -> dict[str, str]:
    path = data_dir / "manifest.jsonl"
    if not path.is_file():
        return {}
    kinds = {}
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                roi = "lane " if record.get("roi") == "lane" else ""
                kinds[str(record["file"])] = f"{roi}{record['kind']}"
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a valid manifest (one JSON object with 'file' and 'kind' per line): {exc}") from exc
    return kinds


def load_split(layout: Layout, split: str, skip_bad: bool = False) -> Split:
    """Decode and preprocess every image of one split; :class:`DatasetError` naming the file on an unreadable one."""
    kinds_by_file = _manifest(layout.root)
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    unknown: list[int] = []
    paths: list[Path] = []
    kinds: list[str] = []
    skipped = 0
    for folder_name, files in layout.files[split].items():
        before = len(paths)
        for file in files:
            try:
                pixels = resize_rgb(read_image_file(file))
            except ValueError as exc:
                if not skip_bad:
                    raise DatasetError(f"{exc}; use --skip-bad to skip unreadable files") from exc
                log.warning("skipping %s", exc)
                skipped += 1
                continue
            images.append(pixels)
            labels.append(1 if folder_name == layout.positive_class else 0)
            unknown.append(1 if folder_name == UNKNOWN_CLASS else 0)
            paths.append(file)
            kinds.append(kinds_by_file.get(str(file.relative_to(layout.root)), folder_name))
        if len(paths) == before:
            raise DatasetError(f"{layout.root / split / folder_name}: no readable images left after skipping bad files")
    if skipped:
        log.warning("%s: skipped %d unreadable file(s)", layout.root / split, skipped)
    stacked = np.stack(images) if images else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    names = layout.class_names + ((UNKNOWN_CLASS,) if UNKNOWN_CLASS in layout.files[split] else ())
    return Split(stacked, np.asarray(labels, np.int32), np.asarray(unknown, np.int32), tuple(paths), names, tuple(kinds), skipped)


def carve_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """A stratified ``fraction`` of the training split as validation (when the dataset has no validation_set/)."""
    rng = np.random.default_rng(seed)
    group = train.labels + 2 * train.unknown
    chosen = []
    for value in np.unique(group):
        idx = np.flatnonzero(group == value)
        take = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        chosen.append(rng.choice(idx, size=take, replace=False))
    val_idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.intp)
    keep = np.setdiff1d(np.arange(len(train.labels)), val_idx)
    return train.subset(keep), train.subset(val_idx)


@dataclass(frozen=True)
class Dataset:
    """Training, validation and test splits, and a fingerprint of the files they came from."""

    train: Split
    validation: Split
    test: Split
    fingerprint: dict[str, Any]


def fingerprint(layout: Layout) -> dict[str, Any]:
    """sha256 over every file's relative path and content (sorted), with counts per split and class."""
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    for split in sorted(layout.files):
        for name in sorted(layout.files[split]):
            counts[f"{split}/{name}"] = len(layout.files[split][name])
            for file in layout.files[split][name]:
                digest.update(str(file.relative_to(layout.root)).encode())
                digest.update(hashlib.sha256(file.read_bytes()).digest())
    return {"sha256": digest.hexdigest(), "files": counts}


def load_dataset(layout: Layout, validation_fraction: float, seed: int, skip_bad: bool = False) -> Dataset:
    """All three splits; validation is carved from training_set when the dataset has none of its own."""
    train = load_split(layout, TRAIN, skip_bad)
    if layout.has_validation:
        validation = load_split(layout, VALIDATION, skip_bad)
    else:
        train, validation = carve_validation(train, validation_fraction, seed)
        log.info("no validation_set/: using a stratified %.0f%% of training_set (%d images) for validation",
                 validation_fraction * 100, len(validation.labels))
    test = load_split(layout, TEST, skip_bad)
    return Dataset(train, validation, test, fingerprint(layout))


def class_balance(split: Split) -> tuple[int, int]:
    """(negatives, positives) among the belt frames."""
    belt = split.labels[split.belt]
    return int(np.sum(belt == 0)), int(np.sum(belt == 1))


def balanced_sample(split: Split, count: int, seed: int) -> npt.NDArray[np.uint8]:
    """Up to ``count`` images for quantization calibration: both classes equally, plus unknown scenes if any."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero((split.labels == label) & split.belt) for label in (0, 1)]
    if np.any(split.unknown == 1):
        groups.append(np.flatnonzero(split.unknown == 1))
    share = [0.425, 0.425, 0.15] if len(groups) == 3 else [0.5, 0.5]
    chosen = [rng.choice(idx, size=min(len(idx), round(count * s)), replace=False) for idx, s in zip(groups, share, strict=True)]
    order = np.concatenate(chosen)
    rng.shuffle(order)
    return split.images[order]
