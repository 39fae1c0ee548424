"""Errors the converter raises on purpose.

    ConverterError
    ├── DatasetError            the folder layout or an image in it is wrong
    ├── SourceModelError        the Keras/SavedModel to convert is unreadable or the wrong shape
    ├── QuantizationError       the converter produced something that is not full-integer
    └── QuantizationGateFailed  the int8 model misses a floor of the gate (recall, precision, scene, agreement)
"""

from __future__ import annotations


class ConverterError(Exception):
    """Base class: reported as one line, exit code 2 (the gate: exit code 3)."""


class DatasetError(ConverterError):
    """The dataset folder layout or one of its images is not usable."""


class SourceModelError(ConverterError):
    """The model file to convert cannot be read or does not fit the 64x64x3 -> sigmoid contract."""


class QuantizationError(ConverterError):
    """Conversion failed, or float ops/tensors remain in the converted model."""


class QuantizationGateFailed(ConverterError):
    """Alert recall, precision, the scene judges or float/int8 agreement miss their floors on the test set."""
