"""The ``quantize`` command: turn a float model into a shippable int8 model with its card.

Convert (full integer), verify that no float op is left, choose the alert threshold and calibrate the
scene judges on the **validation** split, measure everything on the **test** split, gate, and only
then write the ``.tflite`` and its card. Optionally also measure the second renderer and the hard
cases (:mod:`converter.holdout`) for the card: those figures are reported, never used to choose
anything.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import platform
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from converter.dataset import Dataset, Split, balanced_sample, check_layout, load_dataset
from converter.errors import DatasetError, QuantizationGateFailed
from converter.evaluate import (
    float_alert,
    hard_case_crops,
    hard_case_rows,
    holdout_crops,
    holdout_report,
    mahalanobis_option,
    score,
    split_report,
    write_report_png,
)
from converter.gate import GateOptions, calibrate_scene, choose_threshold, gate_failures
from converter.int8_layout import DEFAULT_LAYOUT, Int8Layout, write_dynamic_variant
from edge.inference import Classifier, Runtime, load_runtime
from edge.levels import bands_from_threshold
from edge.modelcard import ModelCard, Preprocessing, card_path_for, sha256_of
from edge.preprocess import COLOR_ORDER, INPUT_SIZE, RESIZE_METHOD, SCALING
from edge.scene import SceneRules, scene_statistics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageOptions:
    """Knobs of ``quantize``; the defaults are the product's acceptance gate."""

    calibration_samples: int = 300
    gate: GateOptions = field(default_factory=GateOptions)
    threshold: float | None = None  # None: chosen on validation
    positive_class: str = "alert"
    seed: int = 1234
    skip_bad: bool = False
    validation_fraction: float = 0.15
    holdout_images: int = 0  # second-renderer frames for the card (0: none)
    hard_case_images: int = 0  # frames per hard case for the card (0: none)
    holdout_seed: int = 20261126
    layout: Int8Layout = DEFAULT_LAYOUT
    dynamic_variant: bool = True  # also emit the dynamic-range form the device may pick (converter.int8_layout)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_versions(runtime: str) -> dict[str, str]:
    """Versions and machine that made the model: training and calibration are bit-reproducible only on the same."""
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu") if _version("tensorflow-cpu") != "not installed" else _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "evaluation_runtime": runtime,
        "conveyor-watch": _version("conveyor-watch"),
        "machine": platform.machine(),
        "cpu": _cpu(),
    }


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "misclassified_int8"}


def _alert_spec(data_dir: Path) -> dict[str, Any]:
    spec = data_dir / "spec.json"
    if not spec.is_file():
        return {}
    try:
        return dict(json.loads(spec.read_text(encoding="utf-8")).get("alert_spec", {}))
    except (ValueError, AttributeError) as exc:
        raise DatasetError(f"{spec}: not readable JSON with an 'alert_spec' object ({exc})") from exc


def _calibrate(classifier: Classifier, source_outputs: tuple[str, ...], validation: Split,
               options: PackageOptions) -> tuple[float, SceneRules, dict[str, Any]]:
    provisional = score(classifier, validation.images)
    belt = validation.belt
    if options.threshold is not None:
        threshold, choice = options.threshold, {"rule": "given on the command line"}
    else:
        threshold, choice = choose_threshold(provisional.alert[belt], validation.labels[belt], options.gate.recall_floor,
                                             options.gate.precision_floor)
    stats = [scene_statistics(image) for image in validation.images]
    rules, scene_choice = calibrate_scene(stats, provisional.unknown, validation.unknown, options.gate.max_false_unknown)
    log.info("threshold %.4f (%s); scene limits %s", threshold, choice["rule"], rules)
    return threshold, rules, {"threshold_choice": choice, "scene_calibration": scene_choice, "outputs": list(source_outputs)}


def package_model(model_path: Path, data_dir: Path, out_path: Path, options: PackageOptions) -> ModelCard:
    """Convert ``model_path`` to full-integer int8 at ``out_path`` with its card; raise if the gate fails.

    On a failed gate the evaluation report is written but the model is not, so an existing good model
    at ``out_path`` is never replaced by a worse one.
    """
    if out_path.suffix != ".tflite":
        raise DatasetError(f"{out_path}: output must end in .tflite")
    layout = check_layout(data_dir, options.positive_class, options.skip_bad)
    data = load_dataset(layout, options.validation_fraction, options.seed, options.skip_bad)

    from converter.model import load_source_model
    from converter.quantize import convert_int8, inspect_integer_only

    source = load_source_model(model_path)
    calibration = balanced_sample(data.train, options.calibration_samples, options.seed)
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
            preprocessing=Preprocessing(size=(INPUT_SIZE, INPUT_SIZE), resize=RESIZE_METHOD, color_order=COLOR_ORDER, scaling=SCALING),
            labels=data.train.class_names[:2],
            positive_class=options.positive_class,
            threshold=0.5,
            outputs=source.outputs,
            scene=SceneRules(unknown_threshold=0.5 if "unknown" in source.outputs else None),
            alert_spec=_alert_spec(data_dir),
            dataset=data.fingerprint,
            source_model={"path": model_path.name, "format": source.kind, "sha256": sha256_of(model_path)},
            tools=tool_versions(f"{runtime.name} {runtime.version}"),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        classifier = Classifier(staged, card, runtime)
        threshold, rules, choices = _calibrate(classifier, source.outputs, data.validation, options)
        card = replace(card, threshold=threshold, scene=rules, levels=asdict(bands_from_threshold(threshold)))
        classifier = Classifier(staged, card, runtime)
        report = measure(classifier, source, data, threshold, runtime, options)
        report |= choices
        _write_evaluation(report, data.test, classifier, threshold, out_path.with_suffix(""))
        problems = gate_failures(report["test"], options.gate)
        if problems:
            raise QuantizationGateFailed(f"{out_path}: not written: " + "; ".join(problems))
        keys = ("threshold_choice", "scene_calibration", "validation", "test", "second_renderer", "hard_cases", "scene_option_mahalanobis")
        metrics: dict[str, Any] = {key: report[key] for key in keys if key in report}
        metrics["gate"] = asdict(options.gate) | {"passed": True}
        metrics["calibration_images"] = len(calibration)
        card = replace(card, metrics=metrics)
        staged.replace(out_path)
    card_path_for(out_path).write_text(card.to_json(), encoding="utf-8")
    if options.dynamic_variant:
        write_dynamic_variant(source, out_path, card, data.test, card.threshold, options.gate)
    return card


def measure(classifier: Classifier, source: Any, data: Dataset, threshold: float, runtime: Runtime,
            options: PackageOptions) -> dict[str, Any]:
    """The validation and test reports, and (if asked) the second renderer and the hard cases."""
    report: dict[str, Any] = {"runtime": f"{runtime.name} {runtime.version}", "threshold": threshold,
                              "scene_rules": asdict(classifier.card.scene)}
    for name, split in (("validation", data.validation), ("test", data.test)):
        if len(split.labels) == 0:
            continue
        scored = score(classifier, split.images)
        float_probs = float_alert(source, split.images) if source is not None else None
        full = split_report(split, scored, float_probs, threshold)
        report[name] = full if name == "test" else _brief(full)
    normal: list[Any] = []
    if options.holdout_images:
        log.info("second renderer: %d frames", options.holdout_images)
        normal, labels = holdout_crops(options.holdout_images, options.holdout_seed)
        report["second_renderer"] = holdout_report(classifier, normal, labels, threshold)
        report["second_renderer"]["seed"] = options.holdout_seed
    if options.hard_case_images:
        log.info("hard cases: %d frames each", options.hard_case_images)
        cases = hard_case_crops(options.hard_case_images, options.holdout_seed + 1)
        report["hard_cases"] = hard_case_rows(classifier, cases, threshold)
        if source is not None and len(data.validation.labels):
            # Evidence for the scene judges' design: the obvious shortcut, measured on the same frames.
            report["scene_option_mahalanobis"] = mahalanobis_option(source, data.validation, cases, normal)
    return report


def _write_evaluation(report: dict[str, Any], test: Split, classifier: Classifier, threshold: float, stem: Path) -> tuple[Path, Path]:
    json_path = stem.with_name(stem.name + ".evaluation.json")
    png_path = stem.with_name(stem.name + ".evaluation.png")
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_report_png(report, test, score(classifier, test.images), threshold, png_path)
    report["test"] = _brief(report["test"])
    return json_path, png_path


def evaluate_files(tflite_path: Path, data_dir: Path, out_dir: Path, model_path: Path | None, options: PackageOptions) -> dict[str, Any]:
    """The ``evaluate`` command: an int8 model (with its card) on ``test_set``, the second renderer and the hard
    cases, at the card's threshold and scene limits (and the float model beside it, if given)."""
    layout = check_layout(data_dir, options.positive_class, options.skip_bad, need_training=False)
    from converter.dataset import TEST, load_split

    test = load_split(layout, TEST, options.skip_bad)
    source = None
    if model_path is not None:
        from converter.model import load_source_model

        source = load_source_model(model_path)
    runtime = load_runtime("auto")
    classifier = Classifier.from_files(tflite_path, runtime)
    threshold = options.threshold if options.threshold is not None else classifier.card.threshold
    empty = Split(test.images[:0], test.labels[:0], test.unknown[:0], (), test.class_names)
    data = Dataset(empty, empty, test, {})
    report = measure(classifier, source, data, threshold, runtime, options)
    report.pop("validation", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_evaluation(report, test, classifier, threshold, out_dir / tflite_path.stem)
    return report
