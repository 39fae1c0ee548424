"""Write a simulated dataset: ``training_set/``, ``validation_set/`` and ``test_set/``, each with
``acceptable/``, ``alert/`` and ``unknown/`` class folders, plus ``manifest.jsonl`` describing every file.

Labels come from the alert spec (:mod:`edge.simulator.spec`) applied to the products drawn; the
``unknown`` folders hold scenes that are not a belt with product (outlier exposure for the scene
head). Frames are rendered by worker processes; every file depends only on (seed, split, class,
index), so the output is byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge.simulator import ACCEPTABLE, ALERT, UNKNOWN, AlertSpec, render_still

log = logging.getLogger(__name__)
CLASSES = (ACCEPTABLE, ALERT)
SPLITS = ("training_set", "validation_set", "test_set")
# Unknown scenes per belt frame in each split (outlier exposure).
UNKNOWN_SHARE = 0.3


def _save(image: np.ndarray, path_stem: Path, quality: int, rng: np.random.Generator) -> Path:
    # JPEG at the camera-like quality the still was drawn with, PNG when it asked for none; a few
    # greyscale files, so the training code meets the formats a user's photos come in.
    pil = Image.fromarray(image)
    if rng.random() < 0.03:
        pil = pil.convert("L")
    if quality <= 0:
        path = path_stem.with_suffix(".png")
        pil.save(path, format="PNG")
    else:
        path = path_stem.with_suffix(".jpg")
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        path.write_bytes(buffer.getvalue())
    return path


def _render_one(task: tuple[str, int, str, int, int, int, float, float]) -> dict[str, Any]:
    out, split_index, label, label_index, index, seed, min_gap, max_ok = task
    rng = np.random.default_rng((seed, split_index, label_index, index))
    image, truth = render_still(rng, label, AlertSpec(min_gap, max_ok))
    folder = Path(out) / SPLITS[split_index] / label
    path = _save(image, folder / f"{label}_{index:05d}", int(truth.conditions.get("jpeg_quality", 0)), rng)
    record = {"file": str(path.relative_to(out)), **asdict(truth)}
    record["gap_pitches"] = round(float(record["gap_pitches"]), 3)
    record["conditions"] = {k: round(float(v), 3) for k, v in truth.conditions.items()}
    return record


def split_counts(train: int, validation: int, test: int, unknown_share: float = UNKNOWN_SHARE) -> dict[str, dict[str, int]]:
    """Images per split and class: belt frames half per class, unknown scenes ``unknown_share`` of them."""
    counts = {}
    for split, total in zip(SPLITS, (train, validation, test), strict=True):
        counts[split] = {ACCEPTABLE: total - total // 2, ALERT: total // 2}
        if round(total * unknown_share) > 0:
            counts[split][UNKNOWN] = round(total * unknown_share)
    return counts


def write_dataset(out: Path, train: int, test: int, seed: int, validation: int | None = None, spec: AlertSpec | None = None,
                  unknown_share: float = UNKNOWN_SHARE, workers: int | None = None) -> dict[str, int]:
    """Render the dataset under ``out``; returns the number of images per ``split/class``.

    ``validation`` defaults to the size of the test split. Deterministic for a seed.
    """
    spec = spec or AlertSpec()
    validation = test if validation is None else validation
    counts = split_counts(train, validation, test, unknown_share)
    label_index = {ACCEPTABLE: 0, ALERT: 1, UNKNOWN: 2}
    tasks = []
    for split_index, split in enumerate(SPLITS):
        for label, n in counts[split].items():
            (out / split / label).mkdir(parents=True, exist_ok=True)
            tasks += [(str(out), split_index, label, label_index[label], i, seed, spec.min_gap_pitches, spec.max_acceptable_pitches)
                      for i in range(n)]
    workers = workers or min(len(os.sched_getaffinity(0)), 8)
    if workers > 1 and len(tasks) > 64:
        # fork: workers share the imported modules; each task seeds its own generator.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            records = pool.map(_render_one, tasks, chunksize=16)
    else:
        records = [_render_one(task) for task in tasks]
    with (out / "manifest.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    (out / "spec.json").write_text(json.dumps({"alert_spec": asdict(spec), "seed": seed, "counts": counts}, indent=2) + "\n",
                                  encoding="utf-8")
    return {f"{split}/{label}": n for split in SPLITS for label, n in counts[split].items()}
