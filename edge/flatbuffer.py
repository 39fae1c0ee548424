"""A bounds check of a .tflite flatbuffer before any runtime parses it.

tflite-runtime 2.14 segfaults on a truncated model instead of raising, so the daemon walks
the file's structure first (root table, vectors of operator codes, subgraphs and buffers, each
buffer's data) and refuses anything that points outside the file. It is not a full verifier:
it catches truncation and garbage, which is what reaches a device in practice.
"""

from __future__ import annotations

import struct

from edge.errors import ModelError

IDENTIFIER = b"TFL3"
# Field numbers in the TFLite schema's Model table.
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_BUFFERS = 1, 2, 4
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2


class _Reader:
    def __init__(self, data: bytes, where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, what: str) -> ModelError:
        return ModelError(f"{self.where}: truncated or corrupt TFLite file ({what})")

    def u32(self, pos: int) -> int:
        if pos < 0 or pos + 4 > len(self.data):
            raise self.fail(f"offset {pos} outside the {len(self.data)}-byte file")
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of a table field, or None when absent."""
        vtable = table - struct.unpack_from("<i", self.data, table)[0] if table + 4 <= len(self.data) else -1
        if vtable < 0 or vtable + 4 > len(self.data):
            raise self.fail("bad vtable")
        vt_size = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        if vtable + slot + 2 > len(self.data):
            raise self.fail("vtable beyond end of file")
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + offset if offset else None

    def vector(self, table: int, index: int, element_size: int = 4) -> tuple[int, int]:
        """(start, length) of a vector field; checks that it lies inside the file."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = pos + self.u32(pos)
        length = self.u32(start)
        end = start + 4 + length * element_size
        if end > len(self.data):
            raise self.fail(f"vector of {length} elements runs past the end of the file")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        """Positions of the tables in a vector field, each checked to fit in the file."""
        start, length = self.vector(table, index)
        found = [start + 4 * i + self.u32(start + 4 * i) for i in range(length)]
        for position in found:
            self.whole_table(position)
        return found

    def whole_table(self, table: int) -> None:
        """The table's inline size (from its vtable) must end inside the file."""
        if table + 4 > len(self.data):
            raise self.fail("table beyond end of file")
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        if vtable < 0 or vtable + 4 > len(self.data):
            raise self.fail("bad vtable")
        vt_size, table_size = struct.unpack_from("<HH", self.data, vtable)
        if vtable + vt_size > len(self.data) or table + table_size > len(self.data):
            raise self.fail("table runs past the end of the file")


def check_tflite(data: bytes, where: str) -> None:
    """Raise :class:`ModelError` unless ``data`` is structurally a complete TFLite model."""
    reader = _Reader(data, where)
    if len(data) < 16:
        raise reader.fail(f"only {len(data)} bytes")
    if data[4:8] != IDENTIFIER:
        raise ModelError(f"{where}: not a TFLite model (file identifier {data[4:8]!r}, expected {IDENTIFIER!r})")
    model = reader.u32(0)
    reader.whole_table(model)
    reader.tables(model, MODEL_OPERATOR_CODES)
    subgraphs = reader.tables(model, MODEL_SUBGRAPHS)
    if not subgraphs:
        raise reader.fail("no subgraphs")
    for subgraph in subgraphs:
        reader.tables(subgraph, SUBGRAPH_TENSORS)
        reader.vector(subgraph, SUBGRAPH_INPUTS)
        reader.vector(subgraph, SUBGRAPH_OUTPUTS)
        reader.tables(subgraph, SUBGRAPH_OPERATORS)
    for buffer in reader.tables(model, MODEL_BUFFERS):
        reader.vector(buffer, BUFFER_DATA, element_size=1)
        offset_pos, size_pos = reader.field(buffer, BUFFER_OFFSET), reader.field(buffer, BUFFER_SIZE)
        if offset_pos is not None and size_pos is not None:
            offset, size = struct.unpack_from("<QQ", data[offset_pos : offset_pos + 8] + data[size_pos : size_pos + 8])
            if offset > 1 and offset + size > len(data):
                raise reader.fail("external buffer runs past the end of the file")
