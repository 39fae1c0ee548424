"""Turn a float model into a shippable int8 model: convert, verify, evaluate, gate, write the card."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.dataset import balanced_sample, load_split
from converter.errors import DatasetError, QuantizationGateFailed
from converter.evaluate import Evaluation, evaluate, gate_failures, write_report_png
from converter.int8_layout import DEFAULT_LAYOUT, Int8Layout, write_dynamic_variant
from converter.model import load_source_model
from converter.quantize import convert_int8, inspect_integer_only
from edge.inference import Classifier, load_runtime
from edge.modelcard import ModelCard, Preprocessing, card_path_for, sha256_of
from edge.preprocess import COLOR_ORDER, INPUT_SIZE, RESIZE_METHOD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseOptions:
    """Knobs of ``quantize``; the defaults are the product's acceptance gate."""

    calibration_samples: int = 300
    accuracy_budget: float = 0.01
    agreement_floor: float = 0.99
    threshold: float = 0.5
    positive_class: str = "alert"
    seed: int = 1234
    skip_bad: bool = False
    layout: Int8Layout = DEFAULT_LAYOUT
    dynamic_variant: bool = True  # also emit the dynamic-range form the device may pick (converter.int8_layout)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(runtime: str) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu") if _version("tensorflow-cpu") != "not installed" else _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "evaluation_runtime": runtime,
        "conveyor-watch": _version("conveyor-watch"),
    }


def _write_evaluation(evaluation: Evaluation, split: Any, stem: Path) -> tuple[Path, Path]:
    json_path = stem.with_name(stem.name + ".evaluation.json")
    png_path = stem.with_name(stem.name + ".evaluation.png")
    json_path.write_text(json.dumps(evaluation.report, indent=2) + "\n", encoding="utf-8")
    write_report_png(evaluation, split, png_path)
    return json_path, png_path


def quantize(model_path: Path, data_dir: Path, out_path: Path, options: ReleaseOptions) -> ModelCard:
    """Convert ``model_path`` to full-integer int8 at ``out_path`` with its card; raise if the gate fails.

    On a failed gate the evaluation report is written but the model is not, so an existing good model
    at ``out_path`` is never replaced by a worse one.
    """
    if out_path.suffix != ".tflite":
        raise DatasetError(f"{out_path}: output must end in .tflite")
    source = load_source_model(model_path)
    train = load_split(data_dir / "training_set", options.positive_class, options.skip_bad)
    test = load_split(data_dir / "test_set", options.positive_class, options.skip_bad)
    calibration = balanced_sample(train, options.calibration_samples, options.seed)
    log.info("quantizing %s with %d calibration images (class-balanced)", model_path, len(calibration))
    model_bytes = convert_int8(source, calibration, options.layout)
    input_spec, output_spec, ops = inspect_integer_only(model_bytes, str(model_path), options.layout.io_dtype)
    log.info("integer-only check passed: %d ops (%s)", len(ops), ", ".join(sorted(set(ops))))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    runtime = load_runtime("auto")
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        staged = Path(tmp) / out_path.name
        staged.write_bytes(model_bytes)
        card = ModelCard(
            model_file=out_path.name,
            tflite_sha256=sha256_of(staged),
            input=input_spec,
            output=output_spec,
            preprocessing=Preprocessing(
                size=(INPUT_SIZE, INPUT_SIZE),
                resize=RESIZE_METHOD,
                color_order=COLOR_ORDER,
                scaling="real = pixel / 255; quantized = round(real / input.scale) + input.zero_point (edge.preprocess)",
            ),
            labels=train.class_names,
            positive_class=options.positive_class,
            threshold=options.threshold,
            source_model={"path": model_path.name, "format": source.kind, "sha256": sha256_of(model_path)},
            tools=tool_versions(f"{runtime.name} {runtime.version}"),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        classifier = Classifier(staged, card, runtime)
        evaluation = evaluate(source, classifier, test, options.threshold)
        _write_evaluation(evaluation, test, out_path.with_suffix(""))
        problems = gate_failures(evaluation.report, options.accuracy_budget, options.agreement_floor)
        if problems:
            raise QuantizationGateFailed(f"{out_path}: not written: " + "; ".join(problems))
        metrics = {
            "test_images": evaluation.report["images"],
            "float": evaluation.report["float"],
            "int8": evaluation.report["int8"],
            "agreement": evaluation.report["agreement"],
            "accuracy_budget": options.accuracy_budget,
            "agreement_floor": options.agreement_floor,
            "calibration_images": len(calibration),
        }
        card = ModelCard(**{**card.__dict__, "metrics": metrics})
        staged.replace(out_path)
    card_path_for(out_path).write_text(card.to_json(), encoding="utf-8")
    if options.dynamic_variant:
        write_dynamic_variant(source, out_path, card, test, options.threshold, options.accuracy_budget, options.agreement_floor)
    return card


def evaluate_files(model_path: Path, tflite_path: Path, data_dir: Path, out_dir: Path, positive_class: str,
                   threshold: float | None, skip_bad: bool) -> dict[str, Any]:
    """The ``evaluate`` command: compare a float model and an int8 model (with its card) on ``test_set``."""
    source = load_source_model(model_path)
    classifier = Classifier.from_files(tflite_path, load_runtime("auto"))
    test = load_split(data_dir / "test_set", positive_class, skip_bad)
    evaluation = evaluate(source, classifier, test, threshold if threshold is not None else classifier.card.threshold)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_evaluation(evaluation, test, out_dir / tflite_path.stem)
    return evaluation.report
