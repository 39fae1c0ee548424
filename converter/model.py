"""The conveyor CNN, and loading a user's model (.keras, legacy Keras 2 .h5, or SavedModel)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.errors import SourceModelError
from edge.preprocess import INPUT_SIZE

log = logging.getLogger(__name__)


ALERT_AND_UNKNOWN = "alert_and_unknown"  # the export model's output layer: column 0 alert, column 1 unknown


def build_cnn(scene_head: bool = False) -> Any:
    """The original network: Conv32-Pool-Conv32-Pool-Dense128-Dense1(sigmoid), adam + binary cross-entropy.

    With ``scene_head`` a second small head on the shared convolutions (Conv24-Pool-Conv24-Dense48-Dense1
    sigmoid, about 9% more multiply-accumulates) estimates the probability that the crop is not a belt with
    product; the alert path is layer for layer the original. The model then has two outputs,
    ``alert`` and ``unknown``; :func:`export_model` joins them into the one tensor the device reads.
    """
    import keras
    from keras import layers

    image = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = layers.Conv2D(32, (3, 3), activation="relu", name="conv1")(image)
    x = layers.MaxPooling2D(pool_size=(2, 2), name="pool1")(x)
    x = layers.Conv2D(32, (3, 3), activation="relu", name="conv2")(x)
    features = layers.MaxPooling2D(pool_size=(2, 2), name="pool2")(x)
    a = layers.Flatten(name="flatten")(features)
    a = layers.Dense(128, activation="relu", name="dense")(a)
    alert = layers.Dense(1, activation="sigmoid", name="alert")(a)
    if not scene_head:
        model = keras.Model(image, alert, name="conveyor_cnn")
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model
    s = layers.Conv2D(24, (3, 3), activation="relu", name="scene_conv1")(features)
    s = layers.MaxPooling2D(pool_size=(2, 2), name="scene_pool")(s)
    s = layers.Conv2D(24, (3, 3), activation="relu", name="scene_conv2")(s)
    s = layers.Flatten(name="scene_flatten")(s)
    s = layers.Dense(48, activation="relu", name="scene_dense")(s)
    unknown = layers.Dense(1, activation="sigmoid", name="unknown")(s)
    return keras.Model(image, {"alert": alert, "unknown": unknown}, name="conveyor_cnn")


def export_model(model: Any) -> Any:
    """The model the device runs: one output, (N, 1) alert or (N, 2) [alert, unknown]."""
    import keras

    if not isinstance(model.output, dict):
        return model
    joined = keras.layers.Concatenate(name=ALERT_AND_UNKNOWN)([model.output["alert"], model.output["unknown"]])
    return keras.Model(model.input, joined, name="conveyor_cnn")


@dataclass
class SourceModel:
    """A loaded float model: ``predict`` maps float [0,1] images (N,64,64,3) to probabilities (N, k), one column
    per name in ``outputs`` (``("alert",)`` or ``("alert", "unknown")``)."""

    path: Path
    kind: str  # "keras", "h5" or "saved_model"
    keras_model: Any | None
    saved_model_dir: Path | None
    outputs: tuple[str, ...] = ("alert",)

    def predict(self, images: npt.NDArray[np.float32], batch_size: int = 256) -> npt.NDArray[np.float32]:
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out = self.keras_model(chunk, training=False) if self.keras_model is not None else self._serving(chunk)
            outputs.append(np.asarray(out, dtype=np.float32).reshape(len(chunk), len(self.outputs)))
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.outputs)), np.float32)

    @cached_property
    def _serving(self) -> Any:
        """The SavedModel's serving_default signature as a function of a float batch (loaded once)."""
        import tensorflow as tf

        fn = tf.saved_model.load(str(self.saved_model_dir)).signatures["serving_default"]
        arg = next(iter(fn.structured_input_signature[1]))
        name = next(iter(fn.structured_outputs))
        return lambda x: fn(**{arg: tf.constant(x)})[name]


def _check_keras_contract(model: Any, path: Path) -> tuple[str, ...]:
    """Check the 64x64x3 -> sigmoid contract; return the output names (("alert",) or ("alert", "unknown"))."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise SourceModelError(f"{path}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4 or tuple(in_shape[1:]) not in ((INPUT_SIZE, INPUT_SIZE, 3), (None, None, 3)):
        raise SourceModelError(f"{path}: input shape {in_shape} is not compatible with (None, 64, 64, 3)")
    out_shape = tuple(outputs[0].shape)
    last = model.layers[-1]
    if out_shape[1:] == (2,) and last.name == ALERT_AND_UNKNOWN:
        # The converter's own two-head model: the joined columns come from sigmoid layers 'alert' and 'unknown'.
        names = {layer.name: layer for layer in model.layers}
        for head in ("alert", "unknown"):
            activation = getattr(getattr(names.get(head), "activation", None), "__name__", "")
            if activation != "sigmoid":
                raise SourceModelError(f"{path}: {ALERT_AND_UNKNOWN!r} needs a sigmoid layer named {head!r}, found {activation or 'none'!r}")
        return ("alert", "unknown")
    if out_shape[1:] != (1,):
        raise SourceModelError(f"{path}: output shape {out_shape} is not a single probability (None, 1) "
                               f"nor the converter's (alert, unknown) pair from a layer named {ALERT_AND_UNKNOWN!r}")
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if activation != "sigmoid":
        raise SourceModelError(f"{path}: last layer {last.name!r} has activation {activation or 'none'!r}; expected sigmoid")
    return ("alert",)


def _check_saved_model(path: Path) -> tuple[str, ...]:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
        fn = loaded.signatures["serving_default"]
    except Exception as exc:
        raise SourceModelError(f"{path}: not a readable SavedModel with a serving_default signature ({exc})") from exc
    (spec,) = list(fn.structured_input_signature[1].values())[:1]
    shape = tuple(spec.shape)
    if len(shape) != 4 or tuple(shape[1:]) not in ((INPUT_SIZE, INPUT_SIZE, 3), (None, None, 3)):
        raise SourceModelError(f"{path}: input shape {shape} is not compatible with (None, 64, 64, 3)")
    outs = list(fn.structured_outputs.values())
    # The layers live in functions inside the signature's graph: search it and them.
    graph = fn.graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    ops = {node.op for node in nodes}
    # The converter's own two-column model: Keras 3's model.export names the output 'output_0', so the joining
    # layer is recognised by its name inside the graph (or by the output's name, as other exporters keep it).
    joined = next(iter(fn.structured_outputs)) == ALERT_AND_UNKNOWN or any(
        part.startswith(ALERT_AND_UNKNOWN) for node in nodes for part in node.name.split("/"))
    pair = len(outs) == 1 and tuple(outs[0].shape)[1:] == (2,) and joined
    if len(outs) != 1 or (tuple(outs[0].shape)[1:] != (1,) and not pair):
        raise SourceModelError(f"{path}: expected a single (None, 1) output or the converter's (None, 2) "
                               f"{ALERT_AND_UNKNOWN!r} pair, got {[tuple(o.shape) for o in outs]}")
    if "Sigmoid" not in ops:
        raise SourceModelError(f"{path}: no sigmoid output found; expected a single-probability sigmoid model")
    return ("alert", "unknown") if pair else ("alert",)


def load_source_model(path: Path) -> SourceModel:
    """Load a float model for conversion and evaluation; :class:`SourceModelError` on any problem."""
    if not path.exists():
        raise SourceModelError(f"{path}: model not found (expected a .keras file, a .h5 file or a SavedModel folder)")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise SourceModelError(f"{path}: folder has no saved_model.pb; expected a SavedModel folder")
        outputs = _check_saved_model(path)
        return SourceModel(path, "saved_model", None, path, outputs)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise SourceModelError(f"{path}: unknown model format {suffix!r}; expected .keras, .h5 or a SavedModel folder")
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean 'unreadable'.
        raise SourceModelError(f"{path}: cannot load model ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from exc
    outputs = _check_keras_contract(model, path)
    return SourceModel(path, "keras" if suffix == ".keras" else "h5", model, None, outputs)
