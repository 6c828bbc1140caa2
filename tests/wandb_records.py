"""Writing `.wandb` files for tests: protobuf `Record`s as wandb-core encodes them, framed as it frames them.

`frame()` reproduces a real file byte for byte from its records (tests/test_source_wandb.py checks
that), so files built here differ from the real ones only in what they say.
"""

from __future__ import annotations

import json
import struct
import zlib

import protobuf_wire

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)


def field(number: int, payload: bytes | int | str, wire: int | None = None) -> bytes:
    """A field whose wire type follows from its payload (an int a varint, text or bytes delimited)."""
    if isinstance(payload, str):
        payload = payload.encode()
    if wire is None:
        wire = 0 if isinstance(payload, int) else 2
    return protobuf_wire.field(number, wire, payload)


def item(key: str, value: object, nested: bool = True) -> bytes:
    """A HistoryItem/SummaryItem/ConfigItem: `nested_key` (or `key`) and `value_json`."""
    text = value if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity") else json.dumps(value)
    return field(2 if nested else 1, key) + field(16, text)


def history(row: dict[str, object]) -> bytes:
    return field(2, b"".join(field(1, item(key, value)) for key, value in row.items()))


def summary(values: dict[str, object]) -> bytes:
    return field(3, b"".join(field(1, item(key, value, nested=False)) for key, value in values.items()))


def config(values: dict[str, object]) -> bytes:
    return field(5, b"".join(field(1, item(key, value, nested=False)) for key, value in values.items()))


def output(line: str, stdout: bool = True) -> bytes:
    body = (field(1, 1) if stdout else b"") + field(3, line)
    return field(13, body)


def metric(name: str = "", glob: str = "", step_metric: str = "") -> bytes:
    body = (field(1, name) if name else b"") + (field(2, glob) if glob else b"") + (field(4, step_metric) if step_metric else b"")
    return field(12, body)


def run(run_id: str, project: str, name: str = "", host: str = "box", start: int = 1_800_000_000) -> bytes:
    body = field(1, run_id) + field(3, project) + (field(8, name) if name else b"") + field(13, host)
    return field(17, body + field(17, field(1, start)))


def exit_record(code: int) -> bytes:
    return field(18, (field(1, code) if code else b"") + field(2, 5))


def header_record() -> bytes:
    return field(21, field(1, field(1, "0.31.0")))


def record(number: int, *parts: bytes) -> bytes:
    """A Record: its `num` and one of the record fields above."""
    return field(1, number) + b"".join(parts)


def frame(payloads: list[bytes], file_header: bytes = HEADER) -> bytes:
    """The LevelDB log framing wandb-core writes: 32 KiB blocks, chunks FULL/FIRST/MIDDLE/LAST."""
    out = bytearray(file_header)
    for payload in payloads:
        first = True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\0" * left
                continue
            piece = payload[: left - 7]
            payload = payload[len(piece) :]
            last = not payload
            kind = (1 if last else 2) if first else (4 if last else 3)
            out += struct.pack("<IHB", zlib.crc32(bytes([kind]) + piece), len(piece), kind) + piece
            first = False
            if last:
                break
    return bytes(out)


def chunks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every chunk of a well-formed file."""
    found = []
    pos = len(HEADER)
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        found.append((pos, kind, length))
        pos += 7 + length
    return found


def payloads(data: bytes) -> list[bytes]:
    """The record payloads of a well-formed file, reassembled."""
    records = []
    parts = b""
    for pos, kind, length in chunks(data):
        piece = data[pos + 7 : pos + 7 + length]
        parts = piece if kind in (1, 2) else parts + piece
        if kind in (1, 4):
            records.append(parts)
    return records
