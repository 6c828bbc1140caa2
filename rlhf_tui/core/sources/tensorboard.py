"""Incremental reader for TensorBoard event files (`events.out.tfevents.*`).

An events file is a sequence of TFRecords, each holding one serialized `Event` protobuf:

    uint64 length | uint32 masked crc32c(length) | length bytes of data | uint32 masked crc32c(data)

transformers' `TensorBoardCallback` writes through `torch.utils.tensorboard`: one event per scalar
(`Summary.Value.simple_value`, a float32) tagged `train/<key>` or `eval/<key>`, all the keys of one
log call at the trainer's global step, the training args and model config as text summaries at the
start, and the end-of-run summary (`train/train_runtime`, ...) at the last step. The framing and the
few protobuf messages needed are decoded here by hand: reading needs neither TensorFlow, tensorboard
nor protobuf.
"""

from __future__ import annotations

import json
import re
import struct
from typing import NamedTuple

from rlhf_tui.core.config import facts_from_training_args, flat_config
from rlhf_tui.core.metrics import SUMMARY_KEYS, split_phase
from rlhf_tui.core.records import NoteBudget, Record, Update
from rlhf_tui.core.sources import protobuf as pb

_HEADER = struct.Struct("<QI")  # length, masked crc32c of the 8 length bytes
_CRC = struct.Struct("<I")
_FRAMING_BYTES = _HEADER.size + _CRC.size

# Scalar events are tens of bytes and text summaries a few KiB; bigger records (graphs, images) are
# skipped unread. Below 2**24 the top five bytes of a length are zero, which resync relies on.
_MAX_RECORD_BYTES = 1 << 24
_SMALL_LENGTH_TOP = b"\0" * 5


_ARGS_TAG = "args/text_summary"


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c_python(data: bytes) -> int:
    """CRC-32C of `data`, table-driven pure Python: the fallback when google-crc32c is missing."""
    table = _CRC_TABLE
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    import google_crc32c
except ImportError:
    google_crc32c = None  # type: ignore[assignment]

# The package's own fallback is pure Python too; only its C extension is worth using.
if google_crc32c is not None and google_crc32c.implementation == "c":
    crc32c = google_crc32c.value
else:
    crc32c = crc32c_python


def masked_crc32c(data: bytes) -> int:
    """The checksum TFRecord stores: crc32c rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class TensorBoardReader:
    """Turns the bytes of one events file, fed as they are appended, into `Update`s.

    `feed` takes whatever new bytes appeared, split anywhere; a partial record waits in a buffer
    for the rest. Each `train/<key>` or `eval/<key>` scalar becomes `<key>` of a train or eval
    record; a tag with any other prefix, or none, is kept whole as a train key. Consecutive events
    of one step and phase are grouped into one Record, but a feed ends with what it has: when a
    step's events straddle two feeds, that step comes out as two records with the same step and
    phase, which the run model merges. A scalar that comes again for the step it already has (a
    duplicated record) keeps its first value, wherever the feeds were cut. The end-of-run summary keys go to `facts["summary"]` and
    mark the run finished. The training args text summary gives `config`, `max_steps` and
    `logging_steps`.

    A record whose checksum fails becomes a note, and reading resumes at the next offset where a
    record header verifies. A record that verifies but does not decode is noted and skipped.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._needed = _HEADER.size  # bytes the buffer must hold before parsing can progress
        self._offset = 0  # file offset of the first buffered byte
        self._skipping = 0  # bytes of an oversized record still to be dropped
        self._resyncing = False
        self._open: Record | None = None
        self._current: tuple[int, str] | None = None  # (step, phase) of the latest scalar, across feeds
        self._current_keys: set[str] = set()
        self._summary: dict[str, float] = {}
        self._notes = NoteBudget(f"{name}: further problems not reported" if name else "further problems not reported")

    def feed(self, data: bytes) -> Update:
        update = Update()
        data = self._drop_skipped(bytes(data))
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
        if self._buffered < self._needed:
            return update
        buffer = b"".join(self._chunks)
        consumed = self._read_records(buffer, update)
        rest = buffer[consumed:]
        self._chunks = [rest] if rest else []
        self._buffered = len(rest)
        self._offset += consumed
        self._flush(update)
        return update

    def _drop_skipped(self, data: bytes) -> bytes:
        if not self._skipping:
            return data
        dropped = min(self._skipping, len(data))
        self._skipping -= dropped
        self._offset += dropped
        return data[dropped:]

    def _read_records(self, buffer: bytes, update: Update) -> int:
        """Handles every complete record in `buffer`; returns how many bytes were consumed."""
        pos = 0
        size = len(buffer)
        while True:
            if self._resyncing:
                pos = _next_header_candidate(buffer, pos)
            if size - pos < _HEADER.size:
                self._needed = _HEADER.size
                return pos
            length, length_crc = _HEADER.unpack_from(buffer, pos)
            if masked_crc32c(buffer[pos : pos + 8]) != length_crc:
                self._start_resync(update, pos, "corrupt record header")
                pos += 1
                continue
            self._resyncing = False
            end = pos + _FRAMING_BYTES + length
            if length >= _MAX_RECORD_BYTES:
                self._note(update, pos, f"record of {length} bytes skipped (limit {_MAX_RECORD_BYTES})")
                self._skipping = max(0, end - size)
                pos = min(end, size)
                continue
            if end > size:
                self._needed = end - pos
                return pos
            payload = buffer[pos + _HEADER.size : end - _CRC.size]
            (data_crc,) = _CRC.unpack_from(buffer, end - _CRC.size)
            if masked_crc32c(payload) != data_crc:
                self._start_resync(update, pos, "corrupt record (checksum mismatch)")
                pos += 1
                continue
            self._handle_event(payload, pos, update)
            pos = end

    def _start_resync(self, update: Update, pos: int, problem: str) -> None:
        if not self._resyncing:
            self._note(update, pos, f"{problem}; skipping to the next good record")
            self._resyncing = True

    def _handle_event(self, payload: bytes, pos: int, update: Update) -> None:
        try:
            event = _parse_event(payload)
        except pb.Malformed as error:
            self._note(update, pos, f"event does not decode ({error}), skipped")
            return
        if event.file_version:
            update.facts["writer"] = "tensorboard"
            if event.wall_time is not None:
                update.facts["start_time"] = event.wall_time
        for tag, number in event.scalars:
            self._add_scalar(update, event.step, event.wall_time, tag, number)
        for tag, text in event.texts:
            if tag == _ARGS_TAG:
                self._read_training_args(text, pos, update)

    def _add_scalar(self, update: Update, step: int, time: float | None, tag: str, value: float) -> None:
        phase, key = split_phase(tag)
        if phase == "train" and key in SUMMARY_KEYS:
            self._summary[key] = value
            update.facts["summary"] = dict(self._summary)
            update.finished = True
            return
        if (step, phase) != self._current:
            self._flush(update)
            self._current = (step, phase)
            self._current_keys = set()
        if key in self._current_keys:
            return
        self._current_keys.add(key)
        if self._open is None:
            self._open = Record(step, time, {}, phase)
        self._open.values[key] = value

    def _flush(self, update: Update) -> None:
        if self._open is not None:
            update.records.append(self._open)
            self._open = None

    def _read_training_args(self, text: bytes, pos: int, update: Update) -> None:
        try:
            args = json.loads(text)
        except (ValueError, RecursionError):
            args = None
        if not isinstance(args, dict):
            self._note(update, pos, "training args are not a JSON object, ignored")
            return
        update.facts["config"] = flat_config(args)
        update.facts.update(facts_from_training_args(args))

    def _note(self, update: Update, pos: int, message: str) -> None:
        prefix = f"{self.name}: " if self.name else ""
        self._notes.add(update.notes, f"{prefix}byte {self._offset + pos}: {message}")


def _next_header_candidate(buffer: bytes, pos: int) -> int:
    """The first offset from `pos` whose length field is below 2**24 or, if there is none, the
    first offset whose header is still incomplete: the place to wait for more bytes."""
    top = buffer.find(_SMALL_LENGTH_TOP, pos + 3)
    if top < 0:
        return max(pos, len(buffer) - (_HEADER.size - 1))
    return top - 3


# Protobuf messages: Event -> Summary -> Value -> TensorProto.

_DT_FLOAT, _DT_DOUBLE, _DT_STRING = 1, 2, 7
_TENSOR_ITEMS = {_DT_FLOAT: pb.FLOAT, _DT_DOUBLE: pb.DOUBLE}


class _Event(NamedTuple):
    wall_time: float | None
    step: int
    file_version: bool
    scalars: list[tuple[str, float]]
    texts: list[tuple[str, bytes]]


# The exact bytes torch.utils.tensorboard writes for one simple_value scalar, when the step is not 0
# and the tag at most 118 bytes (so that every length is a one-byte varint). Matching it with one
# regex is about four times faster than the general decoder, which every other event goes through.
_SCALAR_EVENT = re.compile(
    rb"\x09(.{8})"  # Event.wall_time
    rb"\x10([\x80-\xff]{0,9}[\x00-\x7f])"  # Event.step
    rb"\x2a([\x00-\x7f])"  # Event.summary, its length
    rb"\x0a([\x00-\x7f])"  # Summary.value, its length
    rb"\x0a([\x00-\x7f])(.*)"  # Value.tag: length, bytes
    rb"\x15(.{4})",  # Value.simple_value
    re.DOTALL,
)


def _parse_event(data: bytes) -> _Event:
    match = _SCALAR_EVENT.fullmatch(data)
    if match is not None:
        wall_time, step, summary_length, value_length, tag_length, tag, number = match.groups()
        lengths = (summary_length[0], value_length[0], tag_length[0])
        if lengths == (len(tag) + 9, len(tag) + 7, len(tag)):
            return _Event(
                pb.DOUBLE.unpack(wall_time)[0] or None,
                pb.signed64(pb.varint(step, 0)[0]),
                False,
                [(tag.decode("utf-8", "replace"), pb.FLOAT.unpack(number)[0])],
                [],
            )
    return _parse_any_event(data)


def _parse_any_event(data: bytes) -> _Event:
    wall_time = None
    step = 0
    file_version = False
    scalars: list[tuple[str, float]] = []
    texts: list[tuple[str, bytes]] = []
    for number, wire, value in pb.fields(data):
        if number == 1 and wire == pb.I64:
            wall_time = pb.DOUBLE.unpack(value)[0] or None
        elif number == 2 and wire == pb.VARINT:
            step = pb.signed64(value)
        elif number == 3 and wire == pb.LEN:
            file_version = True
        elif number == 5 and wire == pb.LEN:
            for summary_number, summary_wire, summary_value in pb.fields(value):
                if summary_number == 1 and summary_wire == pb.LEN:
                    _parse_value(summary_value, scalars, texts)
    return _Event(wall_time, step, file_version, scalars, texts)


def _parse_value(data: bytes, scalars: list[tuple[str, float]], texts: list[tuple[str, bytes]]) -> None:
    """Adds a `Summary.Value` to `scalars` or `texts`; other kinds (images, histograms) are ignored."""
    tag = ""
    simple_value = None
    tensor = None
    plugin = ""
    for number, wire, value in pb.fields(data):
        if number == 1 and wire == pb.LEN:
            tag = value.decode("utf-8", "replace")
        elif number == 2 and wire == pb.I32:
            simple_value = pb.FLOAT.unpack(value)[0]
        elif number == 8 and wire == pb.LEN:
            tensor = value
        elif number == 9 and wire == pb.LEN:
            plugin = _plugin_name(value)
    if simple_value is not None:
        scalars.append((tag, simple_value))
    elif tensor is not None and plugin in ("", "scalars"):
        scalar = _tensor_scalar(tensor)
        if scalar is not None:
            scalars.append((tag, scalar))
    elif tensor is not None and plugin == "text":
        text = _tensor_first_string(tensor)
        if text is not None:
            texts.append((tag, text))


def _plugin_name(metadata: bytes) -> str:
    for number, wire, value in pb.fields(metadata):
        if number == 1 and wire == pb.LEN:  # SummaryMetadata.plugin_data
            for data_number, data_wire, data_value in pb.fields(value):
                if data_number == 1 and data_wire == pb.LEN:
                    return data_value.decode("utf-8", "replace")
    return ""


def _tensor_scalar(tensor: bytes) -> float | None:
    """The value of a one-element float or double TensorProto; None for anything else."""
    dtype = 0
    content = b""
    numbers: list[float] = []
    for number, wire, value in pb.fields(tensor):
        if number == 1 and wire == pb.VARINT:
            dtype = value
        elif number == 4 and wire == pb.LEN:
            content = value
        elif number == 5 and wire in (pb.LEN, pb.I32):  # float_val, packed or not
            numbers += _unpack_all(pb.FLOAT, value)
        elif number == 6 and wire in (pb.LEN, pb.I64):  # double_val, packed or not
            numbers += _unpack_all(pb.DOUBLE, value)
    item = _TENSOR_ITEMS.get(dtype)
    if item is None:
        return None
    if content:
        return item.unpack(content)[0] if len(content) == item.size else None
    return numbers[0] if len(numbers) == 1 else None


def _unpack_all(item: struct.Struct, data: bytes) -> list[float]:
    if len(data) % item.size:
        raise pb.Malformed("tensor values are not a whole number of items")
    return [value for (value,) in item.iter_unpack(data)]


def _tensor_first_string(tensor: bytes) -> bytes | None:
    dtype = 0
    first = None
    for number, wire, value in pb.fields(tensor):
        if number == 1 and wire == pb.VARINT:
            dtype = value
        elif number == 8 and wire == pb.LEN and first is None:  # string_val
            first = value
    return first if dtype == _DT_STRING else None
