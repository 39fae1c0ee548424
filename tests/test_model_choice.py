"""The daemon's start-up model choice: measured, never trusting a variant that does not belong to its model."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_MODEL, expected_runtime

from edge.errors import ModelError
from edge.inference import load_runtime
from edge.model_choice import choose_classifier, cpu_isa_summary, invoke_ms, variant_path
from edge.modelcard import card_path_for, load_card, sha256_of


@pytest.fixture
def model(tmp_path: Path) -> Path:
    target = tmp_path / "conveyor_int8.tflite"
    shutil.copy(BUNDLED_MODEL, target)
    shutil.copy(card_path_for(BUNDLED_MODEL), card_path_for(target))
    return target


def write_variant(model: Path, belongs_to: str | None = None, content: bytes | None = None) -> Path:
    """A stand-in variant: the int8 model's own bytes (same interface) with a variant card naming its int8 model."""
    path = variant_path(model)
    path.write_bytes(content if content is not None else model.read_bytes())
    card = load_card(card_path_for(model))
    metrics = {"form": "test stand-in", "int8_model_sha256": belongs_to or card.tflite_sha256}
    card = dataclasses.replace(card, model_file=path.name, tflite_sha256=sha256_of(path), metrics=metrics)
    card_path_for(path).write_text(card.to_json())
    return path


def test_the_variant_lives_beside_the_model() -> None:
    """model.tflite -> model.dynamic.tflite."""
    assert variant_path(Path("/m/conveyor_int8.tflite")) == Path("/m/conveyor_int8.dynamic.tflite")


def test_without_a_variant_the_int8_model_runs(model: Path) -> None:
    """auto with nothing beside the model: the int8 model, no timing, a reason saying why."""
    choice = choose_classifier(model, load_runtime(expected_runtime()), form="auto")
    assert choice.form == "int8" and choice.classifier.model_path == model and choice.ms_per_invoke == {}
    assert "no dynamic-range variant" in choice.reason


def test_auto_times_both_forms_and_keeps_one_that_works(model: Path) -> None:
    """With a matching variant, both are timed interleaved; the kept classifier classifies a batch of two."""
    write_variant(model)
    choice = choose_classifier(model, load_runtime(expected_runtime()), batch=2, form="auto", budget_s=0.05)
    assert set(choice.ms_per_invoke) == {"int8", "dynamic"} and all(v > 0 for v in choice.ms_per_invoke.values())
    assert choice.form in ("int8", "dynamic") and "measured at start-up" in choice.reason
    probabilities = choice.classifier.classify(np.zeros((2, 64, 64, 3), np.uint8))
    assert len(probabilities.alert) == 2


def test_a_variant_built_for_another_model_is_ignored_with_a_warning(model: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stale variant (its card names another int8 model's sha256) never runs: int8, and a WARNING."""
    write_variant(model, belongs_to="0" * 64)
    with caplog.at_level(logging.WARNING, logger="edge.model_choice"):
        choice = choose_classifier(model, load_runtime(expected_runtime()), form="auto")
    assert choice.form == "int8" and "built for another int8 model" in choice.reason
    assert any("built for another int8 model" in r.getMessage() for r in caplog.records)


def test_an_unloadable_variant_is_skipped(model: Path) -> None:
    """A truncated variant file with a matching card: refused by the model checks, the int8 model runs."""
    write_variant(model, content=model.read_bytes()[:1000])
    choice = choose_classifier(model, load_runtime(expected_runtime()), form="auto")
    assert choice.form == "int8" and "not usable" in choice.reason


def test_form_int8_never_loads_the_variant(model: Path) -> None:
    """model.form: int8 runs the int8 model even when the variant beside it is garbage."""
    write_variant(model, content=b"garbage")
    choice = choose_classifier(model, load_runtime(expected_runtime()), form="int8")
    assert choice.form == "int8" and choice.reason == "model.form is int8"


def test_form_dynamic_without_a_variant_is_a_model_error(model: Path) -> None:
    """model.form: dynamic with no variant: one ModelError naming what is missing."""
    with pytest.raises(ModelError, match="model.form is dynamic but no dynamic-range variant beside conveyor_int8.tflite"):
        choose_classifier(model, load_runtime(expected_runtime()), form="dynamic")


def test_form_dynamic_runs_the_variant(model: Path) -> None:
    """model.form: dynamic loads the variant (its card, not the int8 card)."""
    path = write_variant(model)
    choice = choose_classifier(model, load_runtime(expected_runtime()), form="dynamic")
    assert choice.form == "dynamic" and choice.classifier.model_path == path


def test_invoke_timing_reports_a_median_per_classifier(model: Path) -> None:
    """Each candidate gets a positive median ms per classify."""
    from edge.inference import Classifier

    runtime = load_runtime(expected_runtime())
    timings = invoke_ms({"a": Classifier.from_files(model, runtime), "b": Classifier.from_files(model, runtime)}, budget_s=0.02)
    assert set(timings) == {"a", "b"} and min(timings.values()) > 0


def test_the_log_line_names_the_cpu_and_its_isa() -> None:
    """The choice's reason carries the CPU model and the ISA flags that decide int8 speed."""
    summary = cpu_isa_summary()
    assert ":" in summary and summary.split(":")[0].strip()


def test_an_unknown_form_is_a_config_error() -> None:
    """model.form takes auto, int8 or dynamic; anything else is reported with its key."""
    from edge.config import parse_config
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="model.form"):
        parse_config({"model": {"form": "float"}}, check_files=False)
