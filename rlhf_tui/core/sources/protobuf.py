"""Protobuf wire format, decoded by hand: enough for the few messages TensorBoard and W&B files hold.

Readers walk a message with `fields()` and pick the field numbers they know; everything else is
skipped, so a newer writer with more fields still reads. Reading needs no protobuf package.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

VARINT, I64, LEN, I32 = 0, 1, 2, 5
DOUBLE = struct.Struct("<d")
FLOAT = struct.Struct("<f")


class Malformed(ValueError):
    """Bytes whose checksum verified but that do not parse as protobuf."""


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = 0
    shift = 0
    try:
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise Malformed("varint longer than 10 bytes")
    except IndexError:
        raise Malformed("truncated varint") from None


def fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field: an int for varints, bytes otherwise."""
    pos = 0
    end = len(data)
    value: Any
    while pos < end:
        key, pos = varint(data, pos)
        wire = key & 7
        if wire == VARINT:
            value, pos = varint(data, pos)
        elif wire == LEN:
            length, pos = varint(data, pos)
            value = data[pos : pos + length]
            pos += length
        elif wire == I64:
            value = data[pos : pos + 8]
            pos += 8
        elif wire == I32:
            value = data[pos : pos + 4]
            pos += 4
        else:
            raise Malformed(f"unsupported wire type {wire}")
        if pos > end:
            raise Malformed("field runs past the end of its message")
        yield key >> 3, wire, value


def signed64(value: int) -> int:
    """An int64 field's value: varints carry negative numbers as their two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def zigzag(value: int) -> int:
    """A sint32/sint64 field's value."""
    return (value >> 1) ^ -(value & 1)


def text(value: bytes) -> str:
    return value.decode("utf-8", "replace")
