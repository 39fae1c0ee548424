"""The converter on real TensorFlow: train, quantize to full integer, gate, and refuse bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def convert(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "converter", *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("conveyor-convert:")]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.synth import write_dataset

    root = tmp_path_factory.mktemp("data")
    write_dataset(root, train=160, test=60, seed=5)
    return root


@pytest.fixture(scope="session")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("float")
    result = convert("train", "--data", str(dataset), "--out", str(out), "--epochs", "3", "--batch-size", "16", "--seed", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_train_builds_the_original_cnn_and_saves_model_history_and_curves(trained: Path) -> None:
    """Conv32-Pool-Conv32-Pool-Flatten-Dense128-Dense1(sigmoid), adam/BCE; .keras, history.json, PNG."""
    import keras

    model = keras.models.load_model(trained / "conveyor_cnn.keras")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert [getattr(layer, "filters", None) for layer in model.layers[:3:2]] == [32, 32]
    assert model.layers[5].units == 128 and model.layers[6].units == 1
    assert model.layers[6].activation.__name__ == "sigmoid"
    assert tuple(model.inputs[0].shape) == (None, 64, 64, 3)
    assert model.count_params() == 896 + 9248 + 6272 * 128 + 128 + 129
    history = json.loads((trained / "history.json").read_text())
    assert set(history["history"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["history"]["loss"]) == 3
    assert (trained / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_is_reproducible_for_a_seed(dataset: Path, trained: Path, tmp_path: Path) -> None:
    """The same data, seed and epochs give the same weights: the bundled model can be rebuilt."""
    import keras

    result = convert("train", "--data", str(dataset), "--out", str(tmp_path), "--epochs", "3", "--batch-size", "16", "--seed", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    a = keras.models.load_model(trained / "conveyor_cnn.keras").get_weights()
    b = keras.models.load_model(tmp_path / "conveyor_cnn.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_augmentation_matches_image_data_generator_semantics() -> None:
    """Identity parameters reproduce the input; a flip mirrors it; zoom keeps the centre pixel."""
    import tensorflow as tf

    from converter import augment

    image = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    out = augment.augment(tf.constant(image), tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == image.shape and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0
    transforms = augment._transforms(1, 64.0, tf.constant([1, 2], tf.int64)).numpy()
    assert abs(abs(transforms[0, 0]) - 1.0) <= augment.ZOOM_RANGE + 1e-6  # |zx| in [0.8, 1.2]
    assert abs(transforms[0, 1]) <= np.sin(np.deg2rad(augment.SHEAR_DEGREES)) * 1.2 + 1e-6  # shear in degrees, tiny


def quantize(model: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return convert("quantize", "--model", str(model), "--data", str(data), "--out", str(out), "--calibration-samples", "40", *extra)


def test_quantize_writes_a_full_integer_model_and_its_card(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """uint8 in/out, int8 inside, every op integer; the card matches the file; evaluation JSON and PNG beside it."""
    from edge.inference import Classifier, load_runtime
    from edge.modelcard import load_card, sha256_of

    out = tmp_path / "m.tflite"
    result = quantize(trained / "conveyor_cnn.keras", dataset, out, "--accuracy-budget", "1", "--agreement-floor", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_card(tmp_path / "m.card.json")
    assert card.tflite_sha256 == sha256_of(out)
    assert card.source_model["sha256"] == sha256_of(trained / "conveyor_cnn.keras")
    assert card.input.dtype == card.output.dtype == "uint8" and card.input.shape[1:] == (64, 64, 3)
    assert abs(card.output.scale - 1 / 256) < 1e-9 and card.output.zero_point == 0
    assert card.labels == ("acceptable", "alert") and card.positive_class == "alert" and card.threshold == 0.5
    assert {"tensorflow", "keras", "numpy", "python"} <= set(card.tools)
    assert set(card.metrics) >= {"float", "int8", "agreement"} and card.created
    classifier = Classifier(out, card, load_runtime("auto"))
    assert all(dtype in ("uint8", "int8", "int32") for _, dtype in classifier.tensor_dtypes())
    report = json.loads((tmp_path / "m.evaluation.json").read_text())
    assert report["images"] == 60 and set(report["int8"]) >= {"accuracy", "precision", "recall", "confusion"}
    assert (tmp_path / "m.evaluation.png").stat().st_size > 1000
    float_size = len(__import__("converter.quantize", fromlist=["x"]).convert_float(
        __import__("converter.model", fromlist=["x"]).load_source_model(trained / "conveyor_cnn.keras")))
    assert out.stat().st_size <= 0.30 * float_size


def test_the_gate_fails_with_exit_3_and_keeps_the_existing_model(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """An impossible agreement floor: exit 3, a reason, the previous .tflite untouched."""
    out = tmp_path / "m.tflite"
    out.write_bytes(b"previous good model")
    result = quantize(trained / "conveyor_cnn.keras", dataset, out, "--agreement-floor", "1.01")
    assert result.returncode == 3, result.stderr[-2000:]
    assert "agreement" in error_lines(result)[0] and len(error_lines(result)) == 1
    assert out.read_bytes() == b"previous good model"


def test_evaluate_reports_float_and_int8_side_by_side(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """evaluate writes JSON (metrics, confusion matrices, agreement) and a PNG for an existing pair."""
    from edge.config import BUNDLED_MODEL

    result = convert("evaluate", "--model", str(trained / "conveyor_cnn.keras"), "--tflite", str(BUNDLED_MODEL),
                     "--data", str(dataset), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["images"] == 60 and 0.0 <= summary["agreement"] <= 1.0
    assert (tmp_path / "conveyor_int8.evaluation.png").exists()
    assert summary["int8"]["accuracy"] >= 0.95  # the bundled model on this unseen simulator data


def test_a_keras2_h5_model_converts(dataset: Path, tmp_path: Path) -> None:
    """A model written by genuine Keras 2 (tf_keras) in .h5, as the original project saved it, converts."""
    import tf_keras  # scripts/setup-env.sh installs it into .venv
    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(64, 64, 3)), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    path = tmp_path / "legacy.h5"
    model.save(path)
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    result = quantize(path, dataset, tmp_path / "legacy.tflite", "--accuracy-budget", "1", "--agreement-floor", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "legacy.card.json").read_text())["source_model"]["format"] == "h5"


def test_a_savedmodel_folder_converts(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """A SavedModel directory (model.export) is accepted as the source."""
    import keras

    keras.models.load_model(trained / "conveyor_cnn.keras").export(str(tmp_path / "sm"), verbose=False)
    result = quantize(tmp_path / "sm", dataset, tmp_path / "sm.tflite", "--accuracy-budget", "1", "--agreement-floor", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "sm.card.json").read_text())["source_model"]["format"] == "saved_model"


def broken_dataset(base: Path, dataset: Path, change: Any) -> Path:
    target = base / "broken"
    shutil.copytree(dataset, target)
    change(target)
    return target


@pytest.mark.parametrize("case,expected", [
    ("missing_training", "training_set: missing; expected a folder with one sub-folder per class"),
    ("one_class", "expected exactly 2 class sub-folders"),
    ("empty_class", "no images; every class needs at least one"),
    ("corrupt_image", "broken.jpg: not a readable image"),
    ("text_file", "notes.txt: not an image file"),
])
def test_bad_datasets_get_one_line_and_exit_2(trained: Path, dataset: Path, tmp_path: Path, case: str, expected: str) -> None:
    """Each dataset problem is named with its path; no traceback."""
    def change(root: Path) -> None:
        if case == "missing_training":
            shutil.rmtree(root / "training_set")
        elif case == "one_class":
            shutil.rmtree(root / "training_set" / "alert")
        elif case == "empty_class":
            for f in (root / "training_set" / "alert").iterdir():
                f.unlink()
        elif case == "corrupt_image":
            (root / "training_set" / "alert" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
        elif case == "text_file":
            (root / "test_set" / "alert" / "notes.txt").write_text("hello")

    data = broken_dataset(tmp_path, dataset, change)
    result = quantize(trained / "conveyor_cnn.keras", data, tmp_path / "x.tflite")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and expected in lines[0], lines


def test_skip_bad_skips_corrupt_images_with_a_count(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """--skip-bad warns, counts, and carries on."""
    data = broken_dataset(tmp_path, dataset, lambda r: (r / "test_set" / "alert" / "broken.png").write_bytes(b"nope"))
    result = quantize(trained / "conveyor_cnn.keras", data, tmp_path / "x.tflite", "--skip-bad",
                      "--accuracy-budget", "1", "--agreement-floor", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 1 unreadable file(s)" in result.stderr


def make_model(tmp_path: Path, name: str, input_shape: tuple[int, int, int], units: int, activation: str) -> Path:
    import keras

    model = keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(), keras.layers.Dense(units, activation=activation)])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("name,shape,units,activation,expected", [
    ("small_input", (32, 32, 3), 1, "sigmoid", "input shape (None, 32, 32, 3) is not compatible with (None, 64, 64, 3)"),
    ("two_outputs", (64, 64, 3), 2, "softmax", "output shape (None, 2) is not a single probability"),
    ("linear", (64, 64, 3), 1, "linear", "has activation 'linear'; expected sigmoid"),
])
def test_models_of_the_wrong_shape_are_refused(dataset: Path, tmp_path: Path, name: str, shape: tuple[int, int, int],
                                               units: int, activation: str, expected: str) -> None:
    """The 64x64x3 -> single sigmoid contract is checked before converting."""
    path = make_model(tmp_path, name, shape, units, activation)
    result = quantize(path, dataset, tmp_path / "x.tflite")
    assert result.returncode == 2 and expected in error_lines(result)[0], result.stderr[-2000:]


def test_an_unreadable_model_file_is_refused(dataset: Path, tmp_path: Path) -> None:
    """Garbage in a .keras file, a missing file, and an unknown extension: one line each, exit 2."""
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip")
    for path, expected in ((garbage, "cannot load model"), (tmp_path / "missing.keras", "model not found"),
                           (tmp_path / "m.onnx", "model not found")):
        result = quantize(path, dataset, tmp_path / "x.tflite")
        assert result.returncode == 2 and expected in error_lines(result)[0], result.stderr[-1500:]


def test_the_device_refuses_a_model_with_float_ops_even_when_its_card_matches(trained: Path, tmp_path: Path) -> None:
    """A float32 .tflite with a card that describes it exactly is still not full-integer: refused on load."""
    from converter.model import load_source_model
    from converter.quantize import convert_float
    from edge.config import BUNDLED_MODEL
    from edge.errors import ModelError
    from edge.inference import Classifier, load_runtime
    from edge.modelcard import sha256_of

    model = tmp_path / "float.tflite"
    model.write_bytes(convert_float(load_source_model(trained / "conveyor_cnn.keras")))
    card = json.loads(BUNDLED_MODEL.with_suffix(".card.json").read_text())
    card["tflite_sha256"] = sha256_of(model)
    card["input"] |= {"dtype": "float32", "scale": 0.0, "zero_point": 0}
    card["output"] |= {"dtype": "float32", "scale": 0.0, "zero_point": 0}
    model.with_suffix(".card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a full-integer model; float tensors on the path"):
        Classifier.from_files(model, load_runtime("auto"))
