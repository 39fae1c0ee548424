"""Real models, keys and bundles for the model store's tests.

``model_copy`` puts the bundled int8 model in a folder; with a ``tag`` its ``min_runtime_version``
metadata string (read by no runtime) is changed, so the copy is the same network and weights (the
same outputs: tests/test_bundle.py checks it) under another sha256, with a card of its own: a second
real converted model without a second training run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

from edge.model_choice import variant_path
from edge.modelcard import card_path_for, load_card

REPO = Path(__file__).resolve().parents[2]
BUNDLED_MODEL = REPO / "edge" / "models" / "conveyor_int8.tflite"
VERSION_FIELD = b"1.14.0"


def model_copy(folder: Path, tag: str = "", name: str = "conveyor_int8.tflite") -> Path:
    """The bundled model and its card in ``folder`` (another sha256 when ``tag`` is a digit)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    data = BUNDLED_MODEL.read_bytes()
    if tag:
        assert len(tag) == 1 and data.count(VERSION_FIELD) == 1
        data = data.replace(VERSION_FIELD, VERSION_FIELD[:-1] + tag.encode())
    target.write_bytes(data)
    card = load_card(card_path_for(BUNDLED_MODEL))
    card = dataclasses.replace(card, model_file=name, tflite_sha256=hashlib.sha256(data).hexdigest())
    card_path_for(target).write_text(card.to_json())
    return target


def add_variant(model: Path, belongs_to: str | None = None) -> Path:
    """A dynamic-range stand-in beside ``model`` (its bytes, same interface) with a variant card naming its int8 model."""
    path = variant_path(model)
    shutil.copy(model, path)
    card = load_card(card_path_for(model))
    metrics = {"form": "test stand-in", "int8_model_sha256": belongs_to or card.tflite_sha256}
    card = dataclasses.replace(card, model_file=path.name, tflite_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), metrics=metrics)
    card_path_for(path).write_text(card.to_json())
    return path


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
