"""The model card: a JSON file beside each ``.tflite`` that says what the model expects.

The converter writes it; the daemon reads it and refuses a model that does not match.
Only the standard library and the shared preprocessing constants are used here so
both sides can import it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ModelError

CARD_FORMAT = "conveyor-model-card/1"


@dataclass(frozen=True)
class TensorSpec:
    """Shape, integer type and affine quantization of a model input or output."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class Preprocessing:
    """How pixels become the model's input; see :mod:`edge.preprocess`."""

    size: tuple[int, int]
    resize: str
    color_order: str
    scaling: str


@dataclass(frozen=True)
class ModelCard:
    """Everything the device must know about a model to trust its outputs."""

    model_file: str
    tflite_sha256: str
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    positive_class: str
    threshold: float
    source_model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, or of every file in a directory (sorted by relative path)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def card_path_for(model_path: Path) -> Path:
    """The card lives beside the model: ``model.tflite`` -> ``model.card.json``."""
    return model_path.with_suffix(".card.json")


def _tensor(raw: Any, where: str) -> TensorSpec:
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: expected an object with shape, dtype, scale, zero_point")
    try:
        shape = tuple(int(v) for v in raw["shape"])
        return TensorSpec(shape, str(raw["dtype"]), float(raw["scale"]), int(raw["zero_point"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: missing or invalid field ({exc})") from exc


def load_card(path: Path) -> ModelCard:
    """Read and check a model card; raises :class:`ModelError` naming the file on any problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: model card not found (expected beside the .tflite file)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model card is not readable JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        raise ModelError(f"{path}: not a model card (expected \"format\": \"{CARD_FORMAT}\")")
    try:
        pre = raw["preprocessing"]
        card = ModelCard(
            model_file=str(raw["model_file"]),
            tflite_sha256=str(raw["tflite_sha256"]),
            input=_tensor(raw["input"], f"{path}: input"),
            output=_tensor(raw["output"], f"{path}: output"),
            preprocessing=Preprocessing(
                size=(int(pre["size"][0]), int(pre["size"][1])),
                resize=str(pre["resize"]),
                color_order=str(pre["color_order"]),
                scaling=str(pre["scaling"]),
            ),
            labels=tuple(str(v) for v in raw["labels"]),
            positive_class=str(raw["positive_class"]),
            threshold=float(raw["threshold"]),
            source_model=dict(raw.get("source_model", {})),
            metrics=dict(raw.get("metrics", {})),
            tools={str(k): str(v) for k, v in raw.get("tools", {}).items()},
            created=str(raw.get("created", "")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{path}: model card field missing or invalid ({exc})") from exc
    if card.positive_class not in card.labels:
        raise ModelError(f"{path}: positive_class {card.positive_class!r} is not one of labels {list(card.labels)}")
    if not 0.0 < card.threshold < 1.0:
        raise ModelError(f"{path}: threshold must be between 0 and 1, got {card.threshold}")
    return card
