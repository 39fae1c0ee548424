"""Train the conveyor CNN on a dataset folder, the way the original did, with today's Keras."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converter.dataset import Split, load_split
from converter.errors import DatasetError
from edge.preprocess import PIXEL_SCALE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where training left its outputs, and the last epoch's figures."""

    model_path: Path
    history_path: Path
    curves_path: Path
    history: dict[str, list[float]]


def _datasets(train: Split, test: Split, batch_size: int, seed: int) -> tuple[Any, Any]:
    import tensorflow as tf

    from converter.augment import augment

    scale = np.float32(PIXEL_SCALE)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train.images, train.labels.astype(np.float32)))
        .shuffle(len(train.labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    train_ds = (
        tf.data.Dataset.zip((train_ds, seeds))
        .map(lambda xy, s: (augment(tf.cast(xy[0], tf.float32) * scale, s), xy[1]), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    test_ds = (
        tf.data.Dataset.from_tensor_slices((test.images, test.labels.astype(np.float32)))
        .batch(batch_size)
        .map(lambda x, y: (tf.cast(x, tf.float32) * scale, y))
        .prefetch(tf.data.AUTOTUNE)
    )
    return train_ds, test_ds


def write_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and accuracy per epoch, training vs test, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(epochs, history.get(key, []), marker="o", label=f"training {key}")
        ax.plot(epochs, history.get(f"val_{key}", []), marker="o", label=f"test {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def train(
    data_dir: Path,
    out_dir: Path,
    epochs: int,
    batch_size: int,
    seed: int,
    positive_class: str = "alert",
    skip_bad: bool = False,
) -> TrainResult:
    """Train on ``data_dir/training_set``, validate on ``data_dir/test_set``, save model, history and curves."""
    import keras
    import tensorflow as tf

    from converter.model import build_cnn

    train_split = load_split(data_dir / "training_set", positive_class, skip_bad)
    test_split = load_split(data_dir / "test_set", positive_class, skip_bad)
    if train_split.class_names != test_split.class_names:
        raise DatasetError(
            f"{data_dir}: training_set classes {list(train_split.class_names)} differ from test_set classes {list(test_split.class_names)}"
        )
    log.info(
        "training on %d images, validating on %d; classes %s, positive %r",
        len(train_split.labels), len(test_split.labels), list(train_split.class_names), positive_class,
    )
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    model = build_cnn()
    train_ds, test_ds = _datasets(train_split, test_split, batch_size, seed)
    # A progress bar on a terminal; one line per epoch (like the original log) in CI and pipes.
    verbose = 1 if sys.stdout.isatty() else 2
    fit = model.fit(train_ds, epochs=epochs, validation_data=test_ds, verbose=verbose)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "conveyor_cnn.keras"
    model.save(model_path)
    history_path = out_dir / "history.json"
    history_path.write_text(
        json.dumps({"epochs": epochs, "batch_size": batch_size, "seed": seed, "class_names": list(train_split.class_names),
                    "positive_class": positive_class, "history": history}, indent=2) + "\n",
        encoding="utf-8",
    )
    curves_path = out_dir / "training_curves.png"
    write_curves(history, curves_path)
    return TrainResult(model_path, history_path, curves_path, history)
