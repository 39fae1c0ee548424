"""Sparkplug B payloads: metric values in, protobuf bytes out, and commands back. Pure.

The only module that touches the generated protobuf classes (``sparkplug_b_pb2``, compiled from our
own ``sparkplug_b.proto``). Encoding follows Sparkplug 3.0 chapter 6: births carry every metric's
name, alias, datatype and value; data messages carry the alias only (no name, no datatype); every
metric has a timestamp; a value the device does not have is ``is_null``, not a made-up number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from google.protobuf.message import DecodeError

from edge.sparkplug import sparkplug_b_pb2 as pb

Value = bool | int | float | str | None


class DataType(IntEnum):
    """The Sparkplug datatypes this device publishes (numbers from the specification's DataType enum)."""

    INT64 = 4
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13


@dataclass(frozen=True)
class MetricSpec:
    """One metric's identity: what a birth announces once and later messages refer to by ``alias``."""

    name: str
    alias: int
    datatype: DataType


@dataclass(frozen=True)
class Reading:
    """A metric's value at a time (ms since the epoch, UTC)."""

    spec: MetricSpec
    value: Value
    timestamp_ms: int


@dataclass(frozen=True)
class ReceivedMetric:
    """A metric of a command (NCMD/DCMD): hosts name it by alias or by name."""

    name: str | None
    alias: int | None
    value: Value


@dataclass(frozen=True)
class Decoded:
    """A decoded payload (for commands and for our own tests)."""

    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[tuple[str | None, int | None, int | None, Value, bool], ...]  # name, alias, datatype, value, historical


class PayloadError(ValueError):
    """Bytes that are not a Sparkplug B payload we can read."""


def _set_value(metric: pb.Payload.Metric, datatype: DataType, value: Value) -> None:
    if value is None:
        metric.is_null = True
    elif datatype == DataType.BOOLEAN:
        metric.boolean_value = bool(value)
    elif datatype in (DataType.INT64, DataType.DATETIME):
        metric.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF  # Int64 travels as its two's complement
    elif datatype == DataType.FLOAT:
        metric.float_value = float(value)
    elif datatype == DataType.DOUBLE:
        metric.double_value = float(value)
    else:
        metric.string_value = str(value)


def encode(readings: Sequence[Reading], *, timestamp_ms: int, seq: int | None, birth: bool = False,
           historical: bool = False) -> bytes:
    """A birth (``birth=True``: names, aliases and datatypes) or a data message (aliases only)."""
    payload = pb.Payload()
    payload.timestamp = timestamp_ms
    if seq is not None:
        payload.seq = seq
    for reading in readings:
        metric = payload.metrics.add()
        if birth:
            metric.name = reading.spec.name
            metric.datatype = int(reading.spec.datatype)
        metric.alias = reading.spec.alias
        metric.timestamp = reading.timestamp_ms
        if historical:
            metric.is_historical = True
        _set_value(metric, reading.spec.datatype, reading.value)
    return bytes(payload.SerializeToString())


def encode_ndeath(bd_seq: MetricSpec, bd_seq_value: int, timestamp_ms: int) -> bytes:
    """The NDEATH: the bdSeq metric only, by name (hosts match it with the NBIRTH's), and no ``seq``."""
    payload = pb.Payload()
    payload.timestamp = timestamp_ms
    metric = payload.metrics.add()
    metric.name = bd_seq.name
    metric.datatype = int(DataType.INT64)
    metric.timestamp = timestamp_ms
    metric.long_value = bd_seq_value
    return bytes(payload.SerializeToString())


def encode_ddeath(timestamp_ms: int, seq: int) -> bytes:
    """A DDEATH: a timestamp and the node's next ``seq``, no metrics."""
    payload = pb.Payload()
    payload.timestamp = timestamp_ms
    payload.seq = seq
    return bytes(payload.SerializeToString())


def _value_of(metric: pb.Payload.Metric) -> Value:
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if field in ("int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"):
        value: Value = getattr(metric, field)
        return value
    return None  # bytes, data sets, templates: nothing this device accepts


def decode(raw: bytes) -> Decoded:
    """Parse a payload; raises :class:`PayloadError` for anything that is not one."""
    payload = pb.Payload()
    try:
        payload.ParseFromString(raw)
    except (DecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"not a Sparkplug B payload: {exc}") from exc
    metrics = tuple(
        (m.name if m.HasField("name") else None, m.alias if m.HasField("alias") else None,
         m.datatype if m.HasField("datatype") else None, _value_of(m), m.is_historical)
        for m in payload.metrics)
    return Decoded(payload.timestamp if payload.HasField("timestamp") else None,
                   payload.seq if payload.HasField("seq") else None, metrics)


def decode_command(raw: bytes) -> list[ReceivedMetric]:
    """The metrics an NCMD or DCMD writes; raises :class:`PayloadError` for anything else."""
    return [ReceivedMetric(name, alias, value) for name, alias, _, value, _ in decode(raw).metrics]
