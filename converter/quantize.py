"""Full-integer post-training quantization, and proof that no float op or tensor is left.

Input and output are **uint8**, deliberately: camera pixels are bytes, and with the usual
calibration (input range [0, 1] -> scale 1/255, zero point 0) the quantized input *is*
the pixel value, so the device feeds bytes with no arithmetic; a uint8 sigmoid output has
scale 1/256 and zero point 0, so probability = byte / 256. Inside, every op is int8
(TFLITE_BUILTINS_INT8); the converter adds one integer requantize at each end.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from converter.errors import QuantizationError
from converter.int8_layout import DEFAULT_LAYOUT, Int8Layout, configure_int8
from converter.model import SourceModel
from edge.inference import float_tensors, load_runtime
from edge.modelcard import TensorSpec
from edge.preprocess import PIXEL_SCALE

log = logging.getLogger(__name__)


def _converter_for(source: SourceModel, workdir: Path) -> object:
    import tensorflow as tf

    if source.saved_model_dir is not None:
        return tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model_dir))
    # model.export() + from_saved_model() is the path that works across Keras 3 / TF 2.16+;
    # from_keras_model() fails in some combinations (_get_save_spec).
    export_dir = workdir / "saved_model"
    source.keras_model.export(str(export_dir), format="tf_saved_model", verbose=False)  # type: ignore[union-attr]
    return tf.lite.TFLiteConverter.from_saved_model(str(export_dir))


def convert_float(source: SourceModel) -> bytes:
    """The same network as a float32 .tflite (for size and speed comparisons)."""
    with tempfile.TemporaryDirectory() as tmp:
        converter = _converter_for(source, Path(tmp))
        return bytes(converter.convert())  # type: ignore[attr-defined]


def convert_int8(source: SourceModel, calibration: npt.NDArray[np.uint8], layout: Int8Layout = DEFAULT_LAYOUT) -> bytes:
    """Quantize to full integer with ``calibration`` (uint8 64x64x3 images) as the representative dataset.

    ``layout`` picks the I/O dtype and per-channel weights (see :mod:`converter.int8_layout`).
    """
    import tensorflow as tf

    if len(calibration) == 0:
        raise QuantizationError("no calibration images: the training set is empty")

    def representative() -> Iterator[list[npt.NDArray[np.float32]]]:
        for image in calibration:
            yield [image[None].astype(np.float32) * np.float32(PIXEL_SCALE)]

    with tempfile.TemporaryDirectory() as tmp:
        converter = _converter_for(source, Path(tmp))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # type: ignore[attr-defined]
        converter.representative_dataset = representative  # type: ignore[attr-defined]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # type: ignore[attr-defined]
        configure_int8(converter, layout)
        try:
            return bytes(converter.convert())  # type: ignore[attr-defined]
        except Exception as exc:  # the converter raises ConverterError/RuntimeError/ValueError
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else exc.__class__.__name__
            raise QuantizationError(f"{source.path}: full-integer conversion failed ({first})") from exc


def inspect_integer_only(model_bytes: bytes, where: str, io_dtype: str = "uint8") -> tuple[TensorSpec, TensorSpec, list[str]]:
    """Check every tensor any op touches is integer; return input spec, output spec and op names.

    Raises :class:`QuantizationError` naming the first float tensors found.
    """
    runtime = load_runtime("auto")
    interp = runtime.plain_interpreter(model_bytes)
    interp.allocate_tensors()
    floats = float_tensors(interp)
    op_names = [str(op["op_name"]) for op in interp._get_ops_details()]
    float_ops = [name for name in op_names if name == "DEQUANTIZE"]
    if floats or float_ops:
        raise QuantizationError(f"{where}: float ops/tensors remain after conversion: {', '.join((float_ops + floats)[:6])}")
    specs = []
    for detail in (interp.get_input_details()[0], interp.get_output_details()[0]):
        scale, zero_point = detail["quantization"]
        specs.append(TensorSpec(tuple(int(v) for v in detail["shape"]), np.dtype(detail["dtype"]).name, float(scale), int(zero_point)))
    if specs[0].dtype != io_dtype or specs[1].dtype != io_dtype:
        raise QuantizationError(f"{where}: expected {io_dtype} input and output, got {specs[0].dtype} and {specs[1].dtype}")
    return specs[0], specs[1], op_names
