"""Conversion layouts on real TensorFlow: int8 I/O, and the dynamic-range variant the device may pick."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_converter import dataset, trained  # noqa: F401  (session fixtures: one dataset, one trained model)

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def released(trained: Path, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    from converter.gate import GateOptions
    from converter.package import PackageOptions, package_model

    out = tmp_path_factory.mktemp("release") / "m.tflite"
    package_model(trained / "conveyor_cnn.keras", dataset, out,
                  PackageOptions(calibration_samples=40, gate=GateOptions(recall_floor=0.0, precision_floor=0.0, agreement_floor=0.0,
                                                                          accuracy_budget=1.0, max_false_unknown=1.0, unknown_recall_floor=0.0)))
    return out


def split(dataset: Path, name: str) -> Any:  # noqa: F811
    from converter.dataset import check_layout, load_split

    return load_split(check_layout(dataset, "alert"), name)


def test_quantize_also_writes_the_dynamic_range_variant_with_the_same_interface(released: Path) -> None:
    """m.dynamic.tflite + card: int8's input/output specs, its form and the int8 model it belongs to, the gate's metrics."""
    from edge.model_choice import variant_path
    from edge.modelcard import card_path_for, load_card, sha256_of

    variant = variant_path(released)
    card, int8_card = load_card(card_path_for(variant)), load_card(card_path_for(released))
    assert card.tflite_sha256 == sha256_of(variant) and card.model_file == variant.name
    assert (card.input, card.output, card.preprocessing) == (int8_card.input, int8_card.output, int8_card.preprocessing)
    assert card.metrics["int8_model_sha256"] == int8_card.tflite_sha256 and card.metrics["form"].startswith("dynamic-range")
    assert set(card.metrics) >= {"float", "variant", "agreement", "test_images"}
    assert variant.stat().st_size < 0.35 * 3.26e6  # int8 weights: about the int8 model's size, not float32's


def test_the_variant_has_byte_interface_ops_and_float_activations(released: Path) -> None:
    """DEQUANTIZE first, QUANTIZE last, float tensors inside: refused as 'full integer', accepted as the variant."""
    from edge.errors import ModelError
    from edge.inference import Classifier, load_runtime
    from edge.model_choice import variant_path
    from edge.modelcard import card_path_for, load_card

    variant = variant_path(released)
    runtime = load_runtime("ai_edge_litert")
    plain = runtime.plain_interpreter(variant.read_bytes())
    ops = [op["op_name"] for op in plain._get_ops_details()]
    assert ops[0] == "DEQUANTIZE" and ops[-1] == "QUANTIZE" and "CONV_2D" in ops
    with pytest.raises(ModelError, match="not a full-integer model"):
        Classifier(variant, load_card(card_path_for(variant)), runtime)
    classifier = Classifier(variant, load_card(card_path_for(variant)), runtime, integer_only=False)
    assert classifier.classify(np.zeros((1, 64, 64, 3), np.uint8)).alert.shape == (1,)


def test_the_variant_decides_like_the_int8_model_on_the_test_set(released: Path, dataset: Path) -> None:  # noqa: F811
    """Same bytes in, nearly the same probabilities out: mean |difference| <= 0.05, decisions at 0.5 agree on >= 90%."""
    from converter.evaluate import score
    from edge.inference import Classifier, load_runtime
    from edge.model_choice import variant_path

    test = split(dataset, "test_set")
    runtime = load_runtime("ai_edge_litert")
    int8 = score(Classifier.from_files(released, runtime), test.images).alert
    variant = score(Classifier.from_files(variant_path(released), runtime, integer_only=False), test.images).alert
    # This test model is barely trained (many outputs near 0.5), so decisions alone flip easily: the probabilities
    # must be close on average, and the decisions agree on nearly all images.
    assert float(np.mean(np.abs(int8 - variant))) <= 0.05, float(np.mean(np.abs(int8 - variant)))
    assert np.mean((int8 >= 0.5) == (variant >= 0.5)) >= 0.9


def test_int8_io_gives_exactly_the_uint8_models_probabilities(trained: Path, dataset: Path) -> None:  # noqa: F811
    """int8 I/O drops the input QUANTIZE; the device's p - 128 is exact, so every probability is identical."""
    from converter.dataset import balanced_sample
    from converter.int8_layout import Int8Layout
    from converter.model import load_source_model
    from converter.quantize import convert_int8, inspect_integer_only
    from edge.inference import load_runtime
    from edge.preprocess import quantize_input

    source = load_source_model(trained / "conveyor_cnn.keras")
    calibration = balanced_sample(split(dataset, "training_set"), 40, 1234)
    as_uint8 = convert_int8(source, calibration)
    as_int8 = convert_int8(source, calibration, Int8Layout(io_dtype="int8"))
    in8, out8, ops8 = inspect_integer_only(as_int8, "int8 io", io_dtype="int8")
    _, _, ops_u8 = inspect_integer_only(as_uint8, "uint8 io")
    assert (in8.dtype, in8.zero_point, out8.dtype, out8.zero_point) == ("int8", -128, "int8", -128)
    assert ops8.count("QUANTIZE") == ops_u8.count("QUANTIZE") - 2  # both boundary requantizations are gone
    runtime = load_runtime("ai_edge_litert")
    images = split(dataset, "test_set").images[:30]
    results = []
    for model in (as_uint8, as_int8):
        interp = runtime.plain_interpreter(model)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        scale, zero = out["quantization"]
        probs = []
        for image in images:
            interp.set_tensor(inp["index"], quantize_input(image, *inp["quantization"], np.dtype(inp["dtype"]).name)[None])
            interp.invoke()
            probs.append((float(interp.get_tensor(out["index"]).reshape(-1)[0]) - zero) * scale)
        results.append(probs)
    assert results[0] == results[1]


def test_a_variant_that_fails_the_gate_is_not_written_and_a_stale_one_is_removed(
        released: Path, trained: Path, dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    """An impossible agreement floor: no variant beside the model afterwards, not even the old one."""
    import shutil

    from converter.gate import GateOptions
    from converter.int8_layout import write_dynamic_variant
    from converter.model import load_source_model
    from edge.model_choice import variant_path
    from edge.modelcard import card_path_for, load_card

    for path in (released, variant_path(released)):  # a copy of the release, old variant included
        shutil.copy(path, tmp_path / path.name)
        shutil.copy(card_path_for(path), card_path_for(tmp_path / path.name))
    released = tmp_path / released.name
    variant = variant_path(released)
    assert variant.exists()
    source = load_source_model(trained / "conveyor_cnn.keras")
    card = load_card(card_path_for(released))
    impossible = GateOptions(recall_floor=0.0, precision_floor=0.0, agreement_floor=1.01, max_false_unknown=1.0, unknown_recall_floor=0.0)
    result = write_dynamic_variant(source, released, card, split(dataset, "test_set"), 0.5, impossible)
    assert result is None and not variant.exists() and not card_path_for(variant).exists()


def test_byte_interface_refuses_what_it_cannot_express() -> None:
    """A 16-bit interface spec is refused with a QuantizationError, not a broken file."""
    from converter.errors import QuantizationError
    from converter.int8_layout import byte_interface
    from edge.modelcard import TensorSpec

    with pytest.raises(QuantizationError, match="uint8/int8"):
        byte_interface(b"", TensorSpec((1, 64, 64, 3), "int16", 1.0, 0), TensorSpec((1, 1), "uint8", 1 / 256, 0))
