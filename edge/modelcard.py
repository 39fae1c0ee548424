"""The model card: a JSON file beside each ``.tflite`` that says what the model expects and how it scored.

The converter writes it; the device reads it and refuses a model that does not match it, including
a card whose preprocessing (input size, resize method, colour order, scaling) differs from what
:mod:`edge.preprocess` does: such a model would be fed pixels it was not trained on.

Format ``conveyor-model-card/2`` (``/1`` cards are still read):

* ``output``: one uint8 tensor of shape (N, k); ``outputs`` names its k columns: ``["alert"]``, or
  ``["alert", "unknown"]`` when the model has a scene head (probability that the crop is not a belt
  with product). Probability = (byte - zero_point) * scale.
* ``threshold``: the alert operating point, chosen on the validation set (never on the test set).
* ``scene``: the scene judges' limits (:class:`edge.scene.SceneRules`), calibrated on validation.
* ``alert_spec``, ``dataset`` (fingerprint), ``metrics`` (validation, test, second renderer, hard
  cases), ``levels`` (bands derived from the threshold), ``source_model``, ``tools``, ``created``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.preprocess import PREPROCESSING
from edge.scene import SceneRules

CARD_FORMAT = "conveyor-model-card/2"
READABLE_FORMATS = ("conveyor-model-card/1", CARD_FORMAT)
OUTPUT_NAMES = ("alert", "unknown")


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
    outputs: tuple[str, ...] = ("alert",)
    scene: SceneRules = field(default_factory=SceneRules)
    alert_spec: dict[str, Any] = field(default_factory=dict)
    levels: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    source_model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = CARD_FORMAT

    @property
    def has_unknown_head(self) -> bool:
        return "unknown" in self.outputs

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


def _scene(raw: Any) -> SceneRules:
    if raw is None:
        return SceneRules()
    if not isinstance(raw, dict):
        raise TypeError("scene must be an object")
    known = SceneRules.__dataclass_fields__
    unknown_keys = sorted(set(raw) - set(known))
    if unknown_keys:
        raise ValueError(f"scene has unknown keys {unknown_keys}")
    threshold = raw.get("unknown_threshold")
    values = {k: float(v) for k, v in raw.items() if k != "unknown_threshold"}
    return SceneRules(unknown_threshold=None if threshold is None else float(threshold), **values)


def check_preprocessing(card: ModelCard, where: Path) -> None:
    """Refuse a card whose preprocessing is not exactly what :mod:`edge.preprocess` does."""
    pre = card.preprocessing
    actual = {"size": tuple(pre.size), "resize": pre.resize, "color_order": pre.color_order, "scaling": pre.scaling}
    for key, expected in PREPROCESSING.items():
        if actual[key] != expected:
            raise ModelError(f"{where}: preprocessing.{key} is {actual[key]!r} but this device feeds the model {expected!r}; "
                             "convert the model with this version's conveyor-convert")
    if tuple(card.input.shape[1:3]) != tuple(pre.size) or card.input.shape[3:] != (3,):
        raise ModelError(f"{where}: input shape {list(card.input.shape)} does not match preprocessing.size {list(pre.size)} x 3 channels")


def load_card(path: Path) -> ModelCard:
    """Read and check a model card; raises :class:`ModelError` naming the file on any problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: model card not found (expected beside the .tflite file)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: model card is not readable JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") not in READABLE_FORMATS:
        raise ModelError(f"{path}: not a model card this device reads (expected \"format\": \"{CARD_FORMAT}\")")
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
            outputs=tuple(str(v) for v in raw.get("outputs", ["alert"])),
            scene=_scene(raw.get("scene")),
            alert_spec=dict(raw.get("alert_spec", {})),
            levels=dict(raw.get("levels", {})),
            dataset=dict(raw.get("dataset", {})),
            source_model=dict(raw.get("source_model", {})),
            metrics=dict(raw.get("metrics", {})),
            tools={str(k): str(v) for k, v in raw.get("tools", {}).items()},
            created=str(raw.get("created", "")),
            format=str(raw["format"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{path}: model card field missing or invalid ({exc})") from exc
    if card.positive_class not in card.labels:
        raise ModelError(f"{path}: positive_class {card.positive_class!r} is not one of labels {list(card.labels)}")
    if not 0.0 < card.threshold < 1.0:
        raise ModelError(f"{path}: threshold must be between 0 and 1, got {card.threshold}")
    if card.outputs not in (("alert",), OUTPUT_NAMES):
        raise ModelError(f"{path}: outputs must be [\"alert\"] or [\"alert\", \"unknown\"], got {list(card.outputs)}")
    if card.output.shape[-1:] != (len(card.outputs),):
        raise ModelError(f"{path}: output shape {list(card.output.shape)} does not have one column per output {list(card.outputs)}")
    threshold = card.scene.unknown_threshold
    if threshold is not None and not (card.has_unknown_head and 0.0 < threshold < 1.0):
        raise ModelError(f"{path}: scene.unknown_threshold {threshold} needs an 'unknown' output and a value between 0 and 1")
    check_preprocessing(card, path)
    return card
