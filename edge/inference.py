"""Run the int8 model with whichever TFLite runtime is installed.

The interpreter is built and ``allocate_tensors()``-ed once; per frame only
``set_tensor``/``invoke``/``get_tensor`` run. Runtimes are imported here, lazily, so
the rest of the package imports on machines without them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import ModelError
from edge.flatbuffer import check_tflite
from edge.modelcard import ModelCard, TensorSpec, card_path_for, load_card

log = logging.getLogger(__name__)

INTEGER_DTYPES = {"int8", "uint8", "int16", "int32", "int64", "bool"}
# Order for runtime "auto": the maintained LiteRT first (numpy 2, XNNPACK for int8), then the
# legacy tflite-runtime (numpy < 2), and TensorFlow itself only as a last resort on a workstation.
RUNTIMES: dict[str, tuple[str, str]] = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow.lite", "tensorflow-cpu"),
}


@dataclass(frozen=True)
class Runtime:
    """A TFLite runtime that can build interpreters."""

    name: str
    version: str
    module: Any

    @property
    def interpreter_class(self) -> Any:
        return self.module.Interpreter

    def plain_interpreter(self, model_content: bytes) -> Any:
        """An interpreter without default delegates, so its op list is the model's own graph."""
        check_tflite(model_content, "converted model")
        types = getattr(self.module, "OpResolverType", None) or self.module.experimental.OpResolverType
        resolver = types.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return self.module.Interpreter(model_content=model_content, experimental_op_resolver_type=resolver)

    def interpreter(self, model_bytes: bytes, where: str, num_threads: int) -> Any:
        """An interpreter over a copy of the model held in memory.

        Not ``model_path=``: the runtime would map the file, and a file truncated or rewritten in
        place while the daemon runs (an interrupted copy, an upgrade) would kill it with SIGBUS.
        """
        # Check the structure first: tflite-runtime 2.14 crashes (SIGSEGV) on truncated files.
        check_tflite(model_bytes, where)
        try:
            return self.interpreter_class(model_content=model_bytes, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{where}: not a loadable TFLite model ({str(exc).splitlines()[0][:160]})") from exc


def load_runtime(name: str = "auto") -> Runtime:
    """Import the named runtime ("auto" tries them in order); :class:`ModelError` if none is installed."""
    names = list(RUNTIMES) if name == "auto" else [name]
    missing = []
    for candidate in names:
        if candidate not in RUNTIMES:
            raise ModelError(f"unknown runtime {candidate!r}; expected auto, {', '.join(RUNTIMES)}")
        module_name, dist = RUNTIMES[candidate]
        try:
            # tf.lite is an attribute of the public API; importing "tensorflow.lite" directly
            # returns TensorFlow's internal package, which has no Interpreter.
            module = importlib.import_module("tensorflow").lite if candidate == "tensorflow" else importlib.import_module(module_name)
        except ImportError as exc:
            log.debug("runtime %s unavailable: %s", candidate, exc)
            missing.append(dist)
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return Runtime(candidate, version, module)
    raise ModelError(
        f"no TFLite runtime found (tried {', '.join(names)}); install one: "
        "pip install 'conveyor-watch[litert]' (numpy 2) or 'conveyor-watch[tflite]' (numpy<2)"
    )


def tensor_dtypes(interpreter: Any) -> list[tuple[str, str]]:
    """(name, dtype) of every tensor an op of the model reads or writes (delegate nodes skipped)."""
    used: set[int] = set()
    for op in interpreter._get_ops_details():
        if str(op.get("op_name", "")) == "DELEGATE":
            continue  # a delegate node's tensors are the graph's own, already listed
        used.update(int(i) for i in op.get("inputs", []) if int(i) >= 0)
        used.update(int(i) for i in op.get("outputs", []) if int(i) >= 0)
    return [(str(t["name"]), np.dtype(t["dtype"]).name) for t in interpreter.get_tensor_details() if int(t["index"]) in used]


def float_tensors(interpreter: Any) -> list[str]:
    """Names of tensors on the model's path that are not integer: empty for a full-integer model."""
    return [name for name, dtype in tensor_dtypes(interpreter) if dtype not in INTEGER_DTYPES]


def _spec_of(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(tuple(int(v) for v in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def _same(actual: TensorSpec, expected: TensorSpec) -> bool:
    return (
        actual.shape[1:] == expected.shape[1:]
        and actual.dtype == expected.dtype
        and actual.zero_point == expected.zero_point
        and abs(actual.scale - expected.scale) <= 1e-9 * max(1.0, abs(expected.scale))
    )


@dataclass(frozen=True)
class Scores:
    """One invoke's results, one value per crop: the alert probability, and the probability that the
    crop is not a belt with product (None when the model has no scene head)."""

    alert: npt.NDArray[np.float32]
    unknown: npt.NDArray[np.float32] | None


class Classifier:
    """An int8 model checked against its card; ``classify`` returns :class:`Scores`.

    ``batch`` fixes how many crops (regions of interest) go through one ``invoke``. ``integer_only``
    refuses float tensors inside the model; :mod:`edge.model_choice` turns it off only for the
    converter's dynamic-range variant, whose interface is the same integer one.
    """

    def __init__(self, model_path: Path, card: ModelCard, runtime: Runtime, num_threads: int = 1, batch: int = 1,
                 integer_only: bool = True) -> None:
        self.model_path = model_path
        self.card = card
        self.runtime = runtime
        self.batch = batch
        try:
            model_bytes = model_path.read_bytes()  # read once: what is checked is what runs
        except OSError as exc:
            raise ModelError(f"{model_path}: cannot read ({exc.strerror})") from exc
        self._check_sha(hashlib.sha256(model_bytes).hexdigest())
        self._interpreter = runtime.interpreter(model_bytes, str(model_path), num_threads)
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{model_path}: expected one input and one output tensor")
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])
        for actual, expected, what in ((_spec_of(inputs[0]), card.input, "input"), (_spec_of(outputs[0]), card.output, "output")):
            if not _same(actual, expected):
                raise ModelError(f"{model_path}: {what} {actual} does not match the model card's {expected}")
        floats = float_tensors(self._interpreter) if integer_only else []
        if floats:
            raise ModelError(f"{model_path}: not a full-integer model; float tensors on the path: {', '.join(floats[:4])}")
        columns = int(outputs[0]["shape"][-1]) if len(outputs[0]["shape"]) else 0
        if columns != len(card.outputs):
            raise ModelError(f"{model_path}: the model has {columns} output column(s) but its card names {list(card.outputs)}")
        if batch != inputs[0]["shape"][0]:
            self._interpreter.resize_tensor_input(self._input_index, [batch, *card.input.shape[1:]])
        self._interpreter.allocate_tensors()
        self.input_dtype = np.dtype(card.input.dtype)
        self._out_scale = np.float32(card.output.scale)
        self._out_zero = np.float32(card.output.zero_point)

    @classmethod
    def from_files(cls, model_path: Path, runtime: Runtime, num_threads: int = 1, batch: int = 1,
                   integer_only: bool = True) -> Classifier:
        """Load the model and the card beside it."""
        if not model_path.is_file():
            raise ModelError(f"{model_path}: model file not found")
        return cls(model_path, load_card(card_path_for(model_path)), runtime, num_threads, batch, integer_only)

    def _check_sha(self, actual: str) -> None:
        if actual != self.card.tflite_sha256:
            raise ModelError(
                f"{self.model_path}: sha256 {actual[:12]}… does not match its model card ({self.card.tflite_sha256[:12]}…); "
                "the model and card must come from the same conversion"
            )

    def classify(self, inputs: npt.NDArray[np.generic]) -> Scores:
        """Scores for a (batch, 64, 64, 3) array already in the model's input dtype."""
        self._interpreter.set_tensor(self._input_index, inputs)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output_index)
        probs = (raw.reshape(len(inputs), -1).astype(np.float32) - self._out_zero) * self._out_scale
        return Scores(np.ascontiguousarray(probs[:, 0]), np.ascontiguousarray(probs[:, 1]) if probs.shape[1] > 1 else None)

    def tensor_dtypes(self) -> list[tuple[str, str]]:
        """(name, dtype) of every tensor an op reads or writes."""
        return tensor_dtypes(self._interpreter)
