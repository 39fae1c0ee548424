"""Train the conveyor CNN (and, when the dataset has ``unknown/`` scenes, its scene head).

The dataset is checked and decoded before TensorFlow is imported, so a mistake in it is reported in
well under two seconds. Validation (``validation_set/``, or a stratified share of ``training_set``)
drives early stopping and the learning-rate schedule; the test set is not touched here. Classes are
weighted to balance the loss, with a warning when they are badly imbalanced.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.dataset import Dataset, Split, check_layout, class_balance, load_dataset
from converter.errors import DatasetError
from edge.preprocess import PIXEL_SCALE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 90
    batch_size: int = 32
    seed: int = 42
    positive_class: str = "alert"
    skip_bad: bool = False
    validation_fraction: float = 0.15
    patience: int = 10
    imbalance_warning: float = 0.5  # warn when the smaller class has less than this share of the larger


@dataclass(frozen=True)
class TrainResult:
    """Where training left its outputs, and the per-epoch figures."""

    model_path: Path
    history_path: Path
    curves_path: Path
    history: dict[str, list[float]]
    best_epoch: int


def class_weights(split: Split, warn_below: float) -> tuple[float, float]:
    """Weights (negative, positive) that balance the alert loss; warns on imbalance."""
    negatives, positives = class_balance(split)
    if negatives == 0 or positives == 0:
        raise DatasetError(f"training_set: needs belt frames of both classes, found {negatives} negative and {positives} positive")
    if min(negatives, positives) < warn_below * max(negatives, positives):
        log.warning("class imbalance in training_set: %d negative vs %d positive frames; weighting the loss to balance them "
                    "(more frames of the smaller class would help more)", negatives, positives)
    total = negatives + positives
    return total / (2.0 * negatives), total / (2.0 * positives)


def sample_weights(split: Split, weights: tuple[float, float], scene_head: bool) -> dict[str, npt.NDArray[np.float32]]:
    """Per-sample loss weights: the alert loss ignores unknown scenes; the scene loss balances belt vs unknown."""
    belt = split.belt.astype(np.float32)
    alert = np.where(split.labels == 1, weights[1], weights[0]).astype(np.float32) * belt
    out = {"alert": alert}
    if scene_head:
        n_unknown = max(1, int(np.sum(split.unknown)))
        n_belt = max(1, int(np.sum(belt)))
        # Belt frames outweigh unknown scenes in total (a false 'unknown' hides a real gap), while each unknown
        # scene counts up to twice a belt frame.
        w_unknown = min(2.0, n_belt / n_unknown)
        out["unknown"] = np.where(split.unknown == 1, w_unknown, 1.0).astype(np.float32)
    return out


def _targets(split: Split, scene_head: bool) -> dict[str, npt.NDArray[np.float32]]:
    out = {"alert": split.labels.astype(np.float32)[:, None]}
    if scene_head:
        out["unknown"] = split.unknown.astype(np.float32)[:, None]
    return out


def _datasets(data: Dataset, options: TrainOptions, scene_head: bool, weights: tuple[float, float]) -> tuple[Any, Any]:
    import tensorflow as tf

    from converter.augment import augment

    scale = np.float32(PIXEL_SCALE)
    train = data.train
    targets, sw = _targets(train, scene_head), sample_weights(train, weights, scene_head)
    if not scene_head:
        targets, sw = targets["alert"], sw["alert"]  # type: ignore[assignment]
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train.images, targets, sw))
        .shuffle(len(train.labels), seed=options.seed, reshuffle_each_iteration=True)
        .batch(options.batch_size)
    )
    seeds = tf.data.Dataset.random(seed=options.seed, rerandomize_each_iteration=True).batch(2)
    train_ds = (
        tf.data.Dataset.zip((train_ds, seeds))
        .map(lambda xyw, s: (augment(tf.cast(xyw[0], tf.float32) * scale, s), xyw[1], xyw[2]), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = data.validation
    # Validation weighs every frame once (no class weights), and ignores the alert label of unknown scenes.
    val_targets = _targets(val, scene_head)
    val_weights = {"alert": val.belt.astype(np.float32)}
    if scene_head:
        val_weights["unknown"] = np.ones(len(val.labels), np.float32)
    else:
        val_targets, val_weights = val_targets["alert"], val_weights["alert"]  # type: ignore[assignment]
    val_ds = (
        tf.data.Dataset.from_tensor_slices((val.images, val_targets, val_weights))
        .batch(256)
        .map(lambda x, y, w: (tf.cast(x, tf.float32) * scale, y, w))
        .prefetch(tf.data.AUTOTUNE)
    )
    return train_ds, val_ds


def write_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and alert accuracy per epoch, training vs validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "alert_accuracy", "accuracy", "unknown_accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    axes = np.atleast_1d(axes)
    epochs = range(1, len(history.get("loss", [])) + 1)
    for ax, key in zip(axes, keys, strict=True):
        ax.plot(epochs, history.get(key, []), marker="o", label=f"training {key}")
        ax.plot(epochs, history.get(f"val_{key}", []), marker="o", label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def train(data_dir: Path, out_dir: Path, options: TrainOptions) -> TrainResult:
    """Train on ``data_dir``; save the model (as the device will run it), history.json and curves."""
    layout = check_layout(data_dir, options.positive_class, options.skip_bad)
    data = load_dataset(layout, options.validation_fraction, options.seed, options.skip_bad)
    scene_head = bool(np.any(data.train.unknown == 1))
    if scene_head and not np.any(data.validation.unknown == 1):
        raise DatasetError(f"{data_dir}: training_set has unknown/ scenes but the validation split has none")
    weights = class_weights(data.train, options.imbalance_warning)
    log.info("training on %d images (%d unknown scenes), validating on %d; classes %s, positive %r; class weights %.2f/%.2f",
             len(data.train.labels), int(np.sum(data.train.unknown)), len(data.validation.labels), list(data.train.class_names),
             options.positive_class, *weights)

    import keras
    import tensorflow as tf

    from converter.model import build_cnn, export_model

    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_cnn(scene_head)
    if scene_head:
        model.compile(optimizer="adam", loss={"alert": "binary_crossentropy", "unknown": "binary_crossentropy"},
                      weighted_metrics={"alert": ["accuracy"], "unknown": ["accuracy"]})
    else:
        model.compile(optimizer="adam", loss="binary_crossentropy", weighted_metrics=["accuracy"])
    train_ds, val_ds = _datasets(data, options, scene_head, weights)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, options.patience // 2 - 1), min_lr=3e-5),
    ]
    # A progress bar on a terminal; one line per epoch (like the original log) in CI and pipes.
    verbose = 1 if sys.stdout.isatty() else 2
    fit = model.fit(train_ds, epochs=options.epochs, validation_data=val_ds, verbose=verbose, callbacks=callbacks)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "conveyor_cnn.keras"
    export_model(model).save(model_path)
    history_path = out_dir / "history.json"
    history_path.write_text(
        json.dumps({"epochs_run": len(history["loss"]), "best_epoch": best_epoch, "max_epochs": options.epochs,
                    "batch_size": options.batch_size, "seed": options.seed, "class_names": list(data.train.class_names),
                    "positive_class": options.positive_class, "scene_head": scene_head, "class_weights": list(weights),
                    "images": {"train": len(data.train.labels), "validation": len(data.validation.labels)},
                    "dataset": data.fingerprint, "history": history}, indent=2) + "\n",
        encoding="utf-8",
    )
    curves_path = out_dir / "training_curves.png"
    write_curves(history, curves_path)
    return TrainResult(model_path, history_path, curves_path, history, best_epoch)
