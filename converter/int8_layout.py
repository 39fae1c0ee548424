"""How the int8 model is laid out for speed, and the dynamic-range form the device falls back to.

The choices here were measured op by op (``benchmarks/ops.py``; figures in docs/performance.md):

* **I/O dtype.** With uint8 I/O the converter puts a uint8 -> int8 QUANTIZE in front of the first
  convolution. XNNPACK does not delegate that op, so TFLite's reference requantizer runs it: about
  8 us of a 60-70 us invoke on an AVX-512 VNNI core. With int8 I/O it is gone; the device maps a
  byte ``p`` to ``p - 128`` itself, exactly, with one XOR (:func:`edge.preprocess.quantize_into`).
* **Per-channel vs per-tensor weights**: XNNPACK runs both with the same ``qs8_qc8w`` kernels at
  the same speed; per-channel is kept because it is the more accurate.
* **AVX2 without VNNI** (and Arm cores without dot-product instructions): XNNPACK's int8
  convolutions multiply 16-bit pairs (``vpmaddwd``) and pad each 3x3 tap's input channels to 8,
  so the first convolution (3 channels) does 72 multiply-adds for every 27 useful ones and int8
  loses to float32 there. The converter therefore also emits the **dynamic-range** form (int8
  weights, float activations quantized per invoke; the first convolution's 864 weights are below
  the converter's 1024-element threshold, so it stays float) with the *same byte interface* as the
  int8 model, and the device picks whichever is faster on its own CPU at start-up
  (:mod:`edge.model_choice`).

The byte interface is added by editing the converted flatbuffer with LiteRT's own schema object
API (``ai_edge_litert.tools.flatbuffer_utils``): a DEQUANTIZE from the int8 model's input tensor
spec in front, a QUANTIZE to its output spec behind. TensorFlow's converter has no option for
quantized I/O on a model that is not fully quantized.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from converter.errors import QuantizationError
from edge.modelcard import TensorSpec

log = logging.getLogger(__name__)

IoDtype = Literal["uint8", "int8"]
DYNAMIC_FORM = "dynamic-range (int8 weights, float activations)"


@dataclass(frozen=True)
class Int8Layout:
    """Conversion settings of the full-integer model that change speed, not meaning."""

    io_dtype: IoDtype = "uint8"
    per_channel: bool = True


DEFAULT_LAYOUT = Int8Layout()


def configure_int8(converter: Any, layout: Int8Layout) -> None:
    """Apply ``layout`` to a ``tf.lite.TFLiteConverter`` already set up for full-integer conversion."""
    import tensorflow as tf

    io = tf.int8 if layout.io_dtype == "int8" else tf.uint8
    converter.inference_input_type = io
    converter.inference_output_type = io
    if not layout.per_channel:
        converter._experimental_disable_per_channel = True


def dynamic_range_bytes(saved_model_dir: Path) -> bytes:
    """The dynamic-range form of a SavedModel: int8 weights, float input/output and activations."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    try:
        return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError/RuntimeError/ValueError
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else exc.__class__.__name__
        raise QuantizationError(f"{saved_model_dir}: dynamic-range conversion failed ({first})") from exc


_TENSOR_TYPES = {"uint8": "UINT8", "int8": "INT8"}


def byte_interface(model: bytes, input_spec: TensorSpec, output_spec: TensorSpec) -> bytes:
    """Give a float-interface model the integer input and output of ``input_spec``/``output_spec``.

    A DEQUANTIZE turns the integer input into the float tensor the model had; a QUANTIZE turns the
    float output into the integer one. Both are delegated to XNNPACK, so they cost nothing measurable.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    if input_spec.dtype not in _TENSOR_TYPES or output_spec.dtype not in _TENSOR_TYPES:
        raise QuantizationError(f"byte interface needs uint8/int8 specs, got {input_spec.dtype} and {output_spec.dtype}")
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    if len(m.subgraphs) != 1 or len(m.subgraphs[0].inputs) != 1 or len(m.subgraphs[0].outputs) != 1:
        raise QuantizationError("byte interface: expected one subgraph with one input and one output")
    graph = m.subgraphs[0]
    float_in, float_out = graph.inputs[0], graph.outputs[0]
    if graph.tensors[float_in].type != schema.TensorType.FLOAT32 or graph.tensors[float_out].type != schema.TensorType.FLOAT32:
        raise QuantizationError("byte interface: the model's input and output must be float32")

    def opcode(code: int) -> int:
        for index, existing in enumerate(m.operatorCodes):
            if max(existing.builtinCode, existing.deprecatedBuiltinCode) == code:
                return index
        new = schema.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode, new.version = code, min(code, 127), 1
        m.operatorCodes.append(new)
        return len(m.operatorCodes) - 1

    def tensor(like: int, spec: TensorSpec, name: str) -> int:
        source = graph.tensors[like]
        new = schema.TensorT()
        new.shape = list(source.shape)
        new.shapeSignature = None if source.shapeSignature is None else list(source.shapeSignature)
        new.type = getattr(schema.TensorType, _TENSOR_TYPES[spec.dtype])
        new.name = name
        new.quantization = schema.QuantizationParametersT()
        new.quantization.scale, new.quantization.zeroPoint = [spec.scale], [spec.zero_point]
        m.buffers.append(schema.BufferT())
        new.buffer = len(m.buffers) - 1
        graph.tensors.append(new)
        return len(graph.tensors) - 1

    byte_in = tensor(float_in, input_spec, "image_bytes")
    byte_out = tensor(float_out, output_spec, "probability_bytes")
    dequantize = schema.OperatorT()
    dequantize.opcodeIndex, dequantize.inputs, dequantize.outputs = opcode(schema.BuiltinOperator.DEQUANTIZE), [byte_in], [float_in]
    quantize = schema.OperatorT()
    quantize.opcodeIndex, quantize.inputs, quantize.outputs = opcode(schema.BuiltinOperator.QUANTIZE), [float_out], [byte_out]
    graph.operators = [dequantize, *graph.operators, quantize]
    graph.inputs, graph.outputs = [byte_in], [byte_out]
    for signature in m.signatureDefs or []:
        for item in signature.inputs or []:
            item.tensorIndex = byte_in if item.tensorIndex == float_in else item.tensorIndex
        for item in signature.outputs or []:
            item.tensorIndex = byte_out if item.tensorIndex == float_out else item.tensorIndex
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def convert_dynamic_variant(source: Any, input_spec: TensorSpec, output_spec: TensorSpec) -> bytes:
    """The dynamic-range form of ``source`` (a :class:`converter.model.SourceModel`) with the int8 model's interface."""
    if source.saved_model_dir is not None:
        return byte_interface(dynamic_range_bytes(source.saved_model_dir), input_spec, output_spec)
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(tmp) / "saved_model"
        source.keras_model.export(str(export_dir), format="tf_saved_model", verbose=False)
        return byte_interface(dynamic_range_bytes(export_dir), input_spec, output_spec)


def variant_path(int8_path: Path) -> Path:
    """Where the dynamic-range variant of ``int8_path`` lives (see :func:`edge.model_choice.variant_path`)."""
    from edge.model_choice import variant_path as edge_variant_path

    return edge_variant_path(int8_path)


def write_dynamic_variant(source: Any, int8_path: Path, int8_card: Any, test: Any, threshold: float, gate: Any) -> Any:
    """Convert, evaluate and gate the dynamic-range variant of the model just written at ``int8_path``.

    The variant gets its own card (same interface, preprocessing, threshold and scene limits as
    ``int8_card``; its metrics name the form and the int8 model it belongs to) and must pass the same
    gate (``gate``: :class:`converter.gate.GateOptions`) on the same ``test`` split against the float
    model. If it does not, nothing is written, a stale variant from an earlier model is removed (the
    device must never pair a new int8 model with an old variant), and ``None`` is returned.
    """
    import dataclasses
    import datetime as dt

    from converter.evaluate import float_alert, score, split_report
    from converter.gate import gate_failures
    from edge.inference import Classifier, load_runtime
    from edge.modelcard import card_path_for, sha256_of

    out = variant_path(int8_path)
    model_bytes = convert_dynamic_variant(source, int8_card.input, int8_card.output)
    runtime = load_runtime("auto")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        staged.write_bytes(model_bytes)
        card = dataclasses.replace(int8_card, model_file=out.name, tflite_sha256=sha256_of(staged), metrics={},
                                   created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        classifier = Classifier(staged, card, runtime, integer_only=False)
        report = split_report(test, score(classifier, test.images), float_alert(source, test.images), threshold)
        problems = gate_failures(report, gate)
        if problems:
            log.warning("dynamic-range variant not written (the int8 model ships alone): %s", "; ".join(problems))
            out.unlink(missing_ok=True)
            card_path_for(out).unlink(missing_ok=True)
            return None
        metrics = {"form": DYNAMIC_FORM, "int8_model_sha256": int8_card.tflite_sha256,
                   "test_images": report["images"], "float": report["float"], "variant": report["int8"],
                   "agreement": report["agreement"], "scene": report.get("scene"), "gate": dataclasses.asdict(gate)}
        card = dataclasses.replace(card, metrics=metrics)
        staged.replace(out)
    card_path_for(out).write_text(card.to_json(), encoding="utf-8")
    log.info("dynamic-range variant written: %s (%d bytes, agreement with float %.4f)", out, out.stat().st_size,
             report["agreement"])
    return card
