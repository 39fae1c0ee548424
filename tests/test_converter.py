"""The converter on real TensorFlow: train, quantize to full integer, an honest gate, and bad input refused fast."""

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
# Floors off: these tests check the mechanics on a 2-epoch model; the gate itself has its own tests.
NO_FLOORS = ("--recall-floor", "0", "--precision-floor", "0", "--agreement-floor", "0", "--accuracy-budget", "1",
             "--max-false-unknown", "1", "--unknown-recall-floor", "0")


def convert(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "converter", *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("conveyor-convert:")]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.synth import write_dataset

    root = tmp_path_factory.mktemp("data")
    write_dataset(root, train=160, test=60, validation=60, seed=5)
    return root


@pytest.fixture(scope="session")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("float")
    result = convert("train", "--data", str(dataset), "--out", str(out), "--epochs", "2", "--batch-size", "16", "--seed", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def quantize(model: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return convert("quantize", "--model", str(model), "--data", str(data), "--out", str(out), "--calibration-samples", "40", *extra)


def test_train_keeps_the_original_alert_path_and_adds_a_scene_head(trained: Path) -> None:
    """Conv32-Pool-Conv32-Pool-Flatten-Dense128-Dense1(sigmoid) unchanged; a small scene head beside it; one
    (None, 2) output [alert, unknown]; history with validation figures; curves PNG."""
    import keras

    model = keras.models.load_model(trained / "conveyor_cnn.keras")
    layer = {lay.name: lay for lay in model.layers}
    path = ["conv1", "pool1", "conv2", "pool2", "flatten", "dense", "alert"]
    assert [type(layer[n]).__name__ for n in path] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    assert layer["conv1"].filters == layer["conv2"].filters == 32 and layer["dense"].units == 128 and layer["alert"].units == 1
    assert layer["alert"].activation.__name__ == "sigmoid" and layer["unknown"].activation.__name__ == "sigmoid"
    assert sum(layer[n].count_params() for n in path) == 896 + 9248 + 6272 * 128 + 128 + 129
    head = sum(lay.count_params() for lay in model.layers if lay.name.startswith(("scene_", "unknown")))
    assert 0 < head < 0.05 * model.count_params()
    assert tuple(model.outputs[0].shape) == (None, 2) and model.layers[-1].name == "alert_and_unknown"
    history = json.loads((trained / "history.json").read_text())
    assert history["scene_head"] and history["epochs_run"] == 2 and 1 <= history["best_epoch"] <= 2
    assert {"loss", "val_loss", "val_alert_accuracy", "val_unknown_accuracy"} <= set(history["history"])
    assert len(history["dataset"]["sha256"]) == 64
    assert (trained / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_is_reproducible_for_a_seed(dataset: Path, trained: Path, tmp_path: Path) -> None:
    """The same data, seed and epochs give the same weights on the same machine and versions."""
    import keras

    result = convert("train", "--data", str(dataset), "--out", str(tmp_path), "--epochs", "2", "--batch-size", "16", "--seed", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    a = keras.models.load_model(trained / "conveyor_cnn.keras").get_weights()
    b = keras.models.load_model(tmp_path / "conveyor_cnn.keras").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_augmentation_is_seeded_bounded_and_turns_the_flow() -> None:
    """Same seed, same batch; values stay in [0, 1]; some images come out mirrored or transposed, some not."""
    import tensorflow as tf

    from converter.augment import augment

    ramp = np.tile(np.linspace(0.1, 0.9, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    batch = tf.constant(np.repeat(ramp[None], 64, axis=0))
    seed = tf.constant([3, 4], tf.int64)
    a, b = augment(batch, seed).numpy(), augment(batch, seed).numpy()
    assert np.array_equal(a, b) and a.min() >= 0.0 and a.max() <= 1.0
    grey = a.mean(axis=3)
    along_x = grey[:, 32, 56] - grey[:, 32, 8]  # the ramp rises left to right in the original
    along_y = grey[:, 56, 32] - grey[:, 8, 32]
    turned = np.abs(along_y) > np.abs(along_x)
    mirrored = (~turned) & (along_x < 0)
    assert 0 < turned.sum() < 32 and 0 < mirrored.sum() < 48


def test_quantize_writes_a_full_integer_two_column_model_and_an_honest_card(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """uint8 in/out with [alert, unknown] columns, every op integer; the card's threshold comes from validation, its
    levels from the threshold, its dataset fingerprint from the files; validation and test figures recorded."""
    from converter.dataset import check_layout, fingerprint
    from edge.inference import Classifier, load_runtime
    from edge.levels import bands_from_threshold
    from edge.modelcard import load_card, sha256_of

    out = tmp_path / "m.tflite"
    result = quantize(trained / "conveyor_cnn.keras", dataset, out, *NO_FLOORS)
    assert result.returncode == 0, result.stderr[-3000:]
    card = load_card(tmp_path / "m.card.json")
    assert card.tflite_sha256 == sha256_of(out) and card.source_model["sha256"] == sha256_of(trained / "conveyor_cnn.keras")
    assert card.input.dtype == card.output.dtype == "uint8" and card.output.shape[1:] == (2,) and card.outputs == ("alert", "unknown")
    assert card.metrics["threshold_choice"]["rule"] and card.threshold == pytest.approx(card.metrics["test"]["threshold"])
    bands = bands_from_threshold(card.threshold)
    assert card.levels == {"warning": list(bands.warning), "alert": list(bands.alert)}
    assert card.dataset == fingerprint(check_layout(dataset))
    assert card.alert_spec == {"min_gap_pitches": 2.0, "max_acceptable_pitches": 1.25}
    assert card.metrics["validation"]["belt_images"] == 60 and card.metrics["test"]["belt_images"] == 60
    assert "unknown_recall" in card.metrics["test"]["scene"] and card.scene.unknown_threshold is not None
    classifier = Classifier(out, card, load_runtime("auto"))
    assert all(dtype in ("uint8", "int8", "int32") for _, dtype in classifier.tensor_dtypes())
    scores = classifier.classify(np.zeros((1, 64, 64, 3), np.uint8))
    assert scores.unknown is not None and scores.alert.shape == scores.unknown.shape == (1,)
    report = json.loads((tmp_path / "m.evaluation.json").read_text())
    assert {row["kind"] for row in report["test"]["rows"]} >= {"gap", "hand", "noise"}
    assert (tmp_path / "m.evaluation.png").stat().st_size > 1000


def test_a_barely_trained_model_fails_the_gate_and_keeps_the_existing_model(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """Two epochs on 160 images cannot reach 97% recall and 95% precision on the test set: exit 3, one line."""
    out = tmp_path / "m.tflite"
    out.write_bytes(b"previous good model")
    result = quantize(trained / "conveyor_cnn.keras", dataset, out)
    assert result.returncode == 3, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and "gate failed" in lines[0] and ("recall" in lines[0] or "precision" in lines[0]), lines
    assert out.read_bytes() == b"previous good model"
    assert (tmp_path / "m.evaluation.json").exists()  # the report is written anyway


def test_evaluate_reports_test_second_renderer_and_hard_cases_as_rows(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """evaluate: the test set, the second renderer and every hard case, each its own row, at the card's threshold."""
    from converter.holdout import HARD_CASES

    model = tmp_path / "m.tflite"
    assert quantize(trained / "conveyor_cnn.keras", dataset, model, *NO_FLOORS).returncode == 0
    result = convert("evaluate", "--tflite", str(model), "--model", str(trained / "conveyor_cnn.keras"), "--data", str(dataset),
                     "--out", str(tmp_path / "report"), "--second-renderer", "6", "--hard-cases", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert {"recall", "precision", "false_alert_rate"} <= set(summary["test"]) and summary["second_renderer"]["images"] == 6
    assert [row["case"] for row in summary["hard_cases"]] == list(HARD_CASES)
    assert all({"alert_rate", "unknown_rate", "alert_after_scene_judge", "passed"} <= set(row) for row in summary["hard_cases"])
    assert (tmp_path / "report" / "m.evaluation.png").exists()


def test_a_keras2_h5_single_output_model_converts_and_has_no_unknown_head(dataset: Path, tmp_path: Path) -> None:
    """A model written by genuine Keras 2 (tf_keras) in .h5, as the original project saved it: one output, so the
    device's scene verdict relies on the image statistics alone."""
    import tf_keras  # scripts/setup-env.sh installs it into .venv

    from edge.inference import Classifier, load_runtime

    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(64, 64, 3)), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)), layers.Flatten(),
        layers.Dense(128, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    path = tmp_path / "legacy.h5"
    model.save(path)
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    result = quantize(path, dataset, tmp_path / "legacy.tflite", *NO_FLOORS)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "legacy.card.json").read_text())
    assert card["source_model"]["format"] == "h5" and card["outputs"] == ["alert"] and card["scene"]["unknown_threshold"] is None
    scores = Classifier.from_files(tmp_path / "legacy.tflite", load_runtime("auto")).classify(np.zeros((1, 64, 64, 3), np.uint8))
    assert scores.unknown is None and scores.alert.shape == (1,)


def test_a_savedmodel_folder_converts(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """A SavedModel directory (model.export) of the two-column model is accepted as the source."""
    import keras

    keras.models.load_model(trained / "conveyor_cnn.keras").export(str(tmp_path / "sm"), verbose=False)
    result = quantize(tmp_path / "sm", dataset, tmp_path / "sm.tflite", *NO_FLOORS)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "sm.card.json").read_text())
    assert card["source_model"]["format"] == "saved_model" and card["outputs"] == ["alert", "unknown"]


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


@pytest.mark.parametrize("command", ["train", "quantize"])
def test_dataset_errors_are_reported_before_tensorflow_is_imported(dataset: Path, tmp_path: Path, command: str) -> None:
    """A dataset mistake is found without importing TensorFlow (so it is reported in well under 2 s): checked by
    running the CLI in-process and looking at sys.modules when it returns, plus the one line and exit 2."""
    data = broken_dataset(tmp_path, dataset, lambda r: (r / "training_set" / "alert" / "broken.jpg").write_bytes(b"\xff\xd8 no"))
    extra = ["--out", str(tmp_path / "o")] if command == "train" else ["--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "m.tflite")]
    code = (
        "import sys\nfrom converter.cli import main\n"
        f"rc = main({[command, '--data', str(data), *extra]!r})\n"
        "print('rc', rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert result.stdout.strip() == "rc 2 False False", (result.stdout, result.stderr[-2000:])
    lines = error_lines(result)
    assert len(lines) == 1 and "broken.jpg: not a readable image" in lines[0]


def test_class_imbalance_is_warned_about_and_weighted(dataset: Path, tmp_path: Path) -> None:
    """40 acceptable vs 8 alert frames: training says so and balances the loss with class weights."""
    def thin(root: Path) -> None:
        for f in sorted((root / "training_set" / "alert").iterdir())[8:]:
            f.unlink()
        for f in sorted((root / "training_set" / "acceptable").iterdir())[40:]:
            f.unlink()

    data = broken_dataset(tmp_path, dataset, thin)
    result = convert("train", "--data", str(data), "--out", str(tmp_path / "f"), "--epochs", "1", "--batch-size", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "class imbalance in training_set: 40 negative vs 8 positive frames" in result.stderr
    weights = json.loads((tmp_path / "f" / "history.json").read_text())["class_weights"]
    assert weights == pytest.approx([48 / 80, 48 / 16])


def test_skip_bad_skips_corrupt_images_with_a_count(trained: Path, dataset: Path, tmp_path: Path) -> None:
    """--skip-bad warns, counts, and carries on."""
    data = broken_dataset(tmp_path, dataset, lambda r: (r / "test_set" / "alert" / "broken.png").write_bytes(b"nope"))
    result = quantize(trained / "conveyor_cnn.keras", data, tmp_path / "x.tflite", "--skip-bad", *NO_FLOORS)
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
    """The 64x64x3 -> sigmoid contract is checked before converting; a 2-way softmax is not an (alert, unknown) pair."""
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
