"""Write a simulated dataset in the Keras ``training_set/<class>/`` + ``test_set/<class>/`` layout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from edge.simulator import still_frame

CLASSES = ("acceptable", "alert")


def _save(image: np.ndarray, path_stem: Path, rng: np.random.Generator) -> Path:
    # Mostly JPEG at camera-like qualities (artefacts included), some PNG, a few greyscale,
    # so the training code meets the formats a user's real photos come in.
    pil = Image.fromarray(image)
    if rng.random() < 0.05:
        pil = pil.convert("L")
    if rng.random() < 0.2:
        path = path_stem.with_suffix(".png")
        pil.save(path, format="PNG")
    else:
        path = path_stem.with_suffix(".jpg")
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(rng.integers(55, 96)))
        path.write_bytes(buffer.getvalue())
    return path


def write_dataset(out: Path, train: int, test: int, seed: int) -> dict[str, int]:
    """Render ``train`` + ``test`` frames (half per class) under ``out``; returns counts per split.

    Deterministic for a seed: each image has its own generator derived from (seed, split, class, index).
    """
    counts: dict[str, int] = {}
    for split, total in (("training_set", train), ("test_set", test)):
        for label_index, label in enumerate(CLASSES):
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            n = total // 2 + (total % 2 if label_index == 0 else 0)
            for i in range(n):
                rng = np.random.default_rng((seed, 0 if split == "training_set" else 1, label_index, i))
                _save(still_frame(rng, alert=label == "alert"), folder / f"{label}_{i:05d}", rng)
            counts[f"{split}/{label}"] = n
    return counts
