"""A little protobuf encoder for tests: to build TensorBoard events and W&B records byte by byte."""

from __future__ import annotations


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire: int, payload: bytes | int) -> bytes:
    """Field `number` with wire type `wire`: 0 a varint, 2 length-delimited, else raw fixed bytes."""
    key = varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + varint(payload)
    assert isinstance(payload, bytes)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload
