"""W&B run directories (`wandb/run-*/`, `wandb/offline-run-*/`), read without the wandb package.

`run-<id>.wandb` is wandb's transaction log, the one file written in online and offline mode alike
(offline mode writes no `config.yaml` or `wandb-summary.json`). As wandb 0.31 writes it (checked
against files it wrote, and its Go writer `core/pkg/leveldb/record.go`):

- a 7-byte header: `:W&B`, uint16 0xBEE1, a store version byte (0);
- then LevelDB log framing: the file is cut into 32 KiB blocks counted from its first byte, header
  included; a block holds chunks, never one straddling a block end; fewer than 7 bytes left at a
  block end are zero padding. A chunk is `uint32 checksum | uint16 length | uint8 type | data`,
  the checksum being zlib's CRC-32 (IEEE, not CRC-32C, unmasked) of the type byte and the data.
  Type 1 is a whole record, 2/3/4 the first, middle and last pieces of a longer one;
- each record is a protobuf `wandb_internal.Record` (`wandb/proto/wandb_internal.proto`).

wandb-core writes whole blocks and flushes the partial one every `x_transaction_log_flush_interval`
seconds (15 by default), so a live file grows in jumps, cut anywhere inside a chunk.

What is taken: history rows (`_step`, or the step metric a `define_metric` names: transformers and
TRL log `train/global_step`), with `train/`/`eval/` keys split into train and eval records as for
TensorBoard; TRL's profiling timings, rows of their own between steps, are skipped; the summary's
end-of-run keys; config (nested keys joined with "."); project, run name, host, start time; the
console output (fed to `ConsoleLogReader` for tracebacks and crash signatures); the exit record
(exit code 0: finished, else crashed). `files/config.yaml` and `files/wandb-metadata.json`, which
online runs have, are read too; `files/output.log` is wandb's rendering of the terminal, rewritten
in place, so it is read whole, and only when there is no `.wandb` to read; `logs/debug.log` gives
the training process's pid.

A chunk whose checksum fails becomes a note, and reading resumes at the next offset where a chunk
verifies (wandb's own reader drops the rest of the block).
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import zlib
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgspec
import yaml

from rlhf_tui.core.config import facts_from_training_args, flat_config
from rlhf_tui.core.filesystem import LOCAL, FileSystem
from rlhf_tui.core.metrics import SUMMARY_KEYS, split_phase
from rlhf_tui.core.records import Crash, NoteBudget, Record, Update
from rlhf_tui.core.sources import protobuf as pb
from rlhf_tui.core.sources.console_log import ConsoleLogReader
from rlhf_tui.core.sources.jsonl import parse_time

BLOCK = 32 * 1024
FILE_HEADER = struct.Struct("<4sHB")
CHUNK_HEADER = struct.Struct("<IHB")  # checksum, length, type
IDENT = b":W&B"
MAGIC = 0xBEE1
KNOWN_VERSION = 0
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a longer record (a huge table or media) is skipped unread
MAX_STEP_METRICS = 16

# Record fields (wandb_internal.proto)
_HISTORY, _SUMMARY, _OUTPUT, _CONFIG, _METRIC, _OUTPUT_RAW = 2, 3, 4, 5, 12, 13
_RUN, _EXIT, _HEADER, _ENVIRONMENT = 17, 18, 21, 26
_DEFAULT_STEP_KEYS = (b"train/global_step", b"_step")
_SKIP = object()
_PROFILING = "profiling/"  # TRL's ProfilingContext: "profiling/Time taken: GRPOTrainer.compute_loss"
_NUMBER_START = frozenset(b"-0123456789NI")


class _Framing:
    """LevelDB log framing: bytes in (split anywhere), whole record payloads out, checksummed."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._needed = FILE_HEADER.size
        self._offset = 0  # file offset of the first buffered byte
        self._header_read = False
        self._parts: list[bytes] | None = None  # pieces of a record whose last chunk is still to come
        self._parts_size = 0
        self._dropping = False  # inside an oversized record: its chunks are skipped
        self._resyncing = False
        self.problems: list[tuple[int, str]] = []  # (file offset, what), taken by the reader

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if data:
            self._chunks.append(bytes(data))
            self._buffered += len(data)
        if self._buffered < self._needed:
            return []
        buffer = b"".join(self._chunks)
        records: list[tuple[int, bytes]] = []
        consumed = self._read(buffer, records)
        rest = buffer[consumed:]
        self._chunks = [rest] if rest else []
        self._buffered = len(rest)
        self._offset += consumed
        return records

    def _read(self, buffer: bytes, records: list[tuple[int, bytes]]) -> int:
        """Handles every complete chunk in `buffer`; returns how many bytes were consumed.

        While resyncing, a chunk that may start at an offset but is not all there yet cannot be
        verified: the scan goes on past it, and comes back to it for more bytes only if nothing
        after it verifies (in a finished file a false start near the end would wait forever).
        """
        size = len(buffer)
        pos = 0
        if not self._header_read:
            self._check_header(buffer)
            pos = FILE_HEADER.size
        offset = self._offset
        unverified: int | None = None  # the first possible chunk start that could not be checked yet
        while True:
            left = BLOCK - (offset + pos) % BLOCK
            if left < CHUNK_HEADER.size:  # zero padding up to the block end
                if size - pos < left:
                    return self._wait(pos, unverified, size, left)
                pos += left
                continue
            if size - pos < CHUNK_HEADER.size:
                return self._wait(pos, unverified, size, CHUNK_HEADER.size)
            checksum, length, kind = CHUNK_HEADER.unpack_from(buffer, pos)
            if checksum == 0 and length == 0 and kind == 0 and not self._resyncing:
                self._problem(offset + pos, "zeroed block tail skipped")
                self._resyncing = True
                pos += 1
                continue
            end = pos + CHUNK_HEADER.size + length
            if not FULL <= kind <= LAST or length > left - CHUNK_HEADER.size:
                self._corrupt(offset + pos)
                pos += 1
                continue
            if end > size:
                if not self._resyncing:
                    return self._wait(pos, None, size, end - pos)
                unverified = pos if unverified is None else unverified
                pos += 1
                continue
            if zlib.crc32(buffer[pos + 6 : end]) != checksum:
                self._corrupt(offset + pos)
                pos += 1
                continue
            if self._resyncing and kind in (MIDDLE, LAST):  # the rest of a record torn apart
                pos += 1
                continue
            self._resyncing = False
            unverified = None
            self._chunk(kind, buffer[pos + CHUNK_HEADER.size : end], offset + pos, records)
            pos = end

    def _wait(self, pos: int, unverified: int | None, size: int, needed: int) -> int:
        """Stop here for more bytes: at `pos`, or back at the first unverified chunk start."""
        if unverified is None:
            self._needed = needed
            return pos
        self._needed = size - unverified + 1
        return unverified

    def _check_header(self, buffer: bytes) -> None:
        self._header_read = True
        ident, magic, version = FILE_HEADER.unpack_from(buffer)
        if ident != IDENT or magic != MAGIC:
            self._problem(0, "no W&B file header (not a .wandb transaction log?)")
        elif version != KNOWN_VERSION:
            self._problem(0, f"store version {version}, read as version {KNOWN_VERSION}")

    def _corrupt(self, offset: int) -> None:
        if not self._resyncing:
            self._problem(offset, "corrupt chunk (checksum or length); skipping to the next good one")
            self._resyncing = True
            self._drop_parts()

    def _chunk(self, kind: int, data: bytes, offset: int, records: list[tuple[int, bytes]]) -> None:
        if kind in (FULL, FIRST):
            if self._parts is not None:
                self._problem(offset, "record cut short by the next one, skipped")
            self._drop_parts()
            self._dropping = False
            if kind == FULL:
                records.append((offset, data))
                return
            self._parts = [data]
            self._parts_size = len(data)
            return
        if self._dropping:
            self._dropping = kind != LAST
            return
        if self._parts is None:
            self._problem(offset, "piece of a record without its start, skipped")
            return
        self._parts_size += len(data)
        if self._parts_size > MAX_RECORD_BYTES:
            self._problem(offset, f"record over {MAX_RECORD_BYTES >> 20} MiB skipped")
            self._drop_parts()
            self._dropping = kind != LAST
            return
        self._parts.append(data)
        if kind == LAST:
            records.append((offset, b"".join(self._parts)))
            self._drop_parts()

    def _drop_parts(self) -> None:
        self._parts = None
        self._parts_size = 0

    def _problem(self, offset: int, what: str) -> None:
        self.problems.append((offset, what))


class WandbReader:
    """Turns the bytes of one `.wandb` file, fed as they are appended, into `Update`s.

    `crash` is the current verdict: the console's crash evidence (a traceback, OOM, ...) until the
    exit record says how the run ended; exit code 0 means finished, whatever the console showed.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._framing = _Framing()
        self._console = ConsoleLogReader(name)
        self._step_keys: list[bytes] = list(_DEFAULT_STEP_KEYS)
        self._config: dict[str, Any] = {}
        self._summary: dict[str, float] = {}
        self._kinds: dict[bytes, Any] = {}
        self._exit_code: int | None = None
        self._started = False
        self._last_step: int | None = None
        self._verdict: Crash | None = None
        self._notes = NoteBudget(f"{self.name}: further problems not reported" if self.name else "further problems not reported")

    @property
    def crash(self) -> Crash | None:
        return self._verdict

    def feed(self, data: bytes) -> Update:
        update = Update()
        console: list[bytes] = []
        for offset, payload in self._framing.feed(data):
            try:
                self._record(payload, update, console)
            except (pb.Malformed, UnicodeDecodeError) as error:
                self._note(update, offset, f"record does not decode ({error}), skipped")
        for offset, problem in self._framing.problems:
            self._note(update, offset, problem)
        self._framing.problems.clear()
        if console:
            self._read_console(b"".join(console), update)
        self._judge(update)
        return update

    # --- records ---------------------------------------------------------------------------

    def _record(self, payload: bytes, update: Update, console: list[bytes]) -> None:
        for number, wire, value in pb.fields(payload):
            if wire != pb.LEN:
                continue
            if number == _HISTORY:
                self._history(value, update)
            elif number in (_OUTPUT_RAW, _OUTPUT):
                line = _output_line(value)
                if line:
                    console.append(line)
            elif number == _SUMMARY:
                self._summary_record(value, update)
            elif number == _CONFIG:
                self._config_record(value, update)
            elif number == _METRIC:
                self._metric(value)
            elif number == _RUN:
                self._run(value, update)
            elif number == _EXIT:
                self._exit(value, update)
            elif number == _ENVIRONMENT:
                self._environment(value, update)
            elif number == _HEADER:
                update.facts["writer"] = "wandb"

    def _history(self, data: bytes, update: Update) -> None:
        row = dict(_history_items(data))
        step = None
        for step_key in self._step_keys:
            step = _whole(row.get(step_key))
            if step is not None:
                break
        if step is None:
            return
        when = row.get(b"_timestamp")
        train: dict[str, Any] = {}
        evals: dict[str, Any] = {}
        kinds = self._kinds
        for raw_key, value in row.items():
            kind = kinds.get(raw_key)
            if kind is None:
                kind = self._kind(raw_key)
            if kind is _SKIP or value is None:
                continue
            if kind[0]:
                train[kind[1]] = value
            else:
                evals[kind[1]] = value
        if train and not all(key.startswith(_PROFILING) for key in train):
            update.records.append(Record(step, when, train))
            if self._last_step is None or step > self._last_step:
                self._last_step = step
        if evals:
            update.records.append(Record(step, when, evals, "eval"))

    def _kind(self, raw_key: bytes) -> Any:
        """What a history key is: _SKIP (wandb's own `_` keys, step metrics) or (is train, name)."""
        key = raw_key.decode("utf-8", "replace") or "?"
        if key[0] == "_" or raw_key in self._step_keys:
            kind: Any = _SKIP
        else:
            phase, name = split_phase(key)
            kind = (phase == "train", name)
        if len(self._kinds) < _KEY_CACHE_SIZE:
            self._kinds[raw_key] = kind
        return kind

    def _summary_record(self, data: bytes, update: Update) -> None:
        if _SUMMARY_KEY_BYTES.search(data) is None:  # wandb-core repeats every history row as a summary
            return
        changed = False
        for number, wire, value in pb.fields(data):
            if number == 1 and wire == pb.LEN:
                raw_key, item = _item(value)
                key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
                if key in SUMMARY_KEYS and type(item) in (int, float):
                    self._summary[key] = float(item)
                    changed = True
        if changed:
            update.facts["summary"] = dict(self._summary)

    def _config_record(self, data: bytes, update: Update) -> None:
        for number, wire, value in pb.fields(data):
            if wire != pb.LEN or number not in (1, 2):
                continue
            path, item = _config_item(value)
            if not path:
                continue
            if number == 1:
                _set_path(self._config, path, item)
            else:
                _remove_path(self._config, path)
        update.facts["config"] = flat_config(self._config, skip=("_wandb",))
        update.facts.update(facts_from_training_args(self._config))

    def _metric(self, data: bytes) -> None:
        for number, wire, value in pb.fields(data):
            if number == 4 and wire == pb.LEN and value:  # step_metric
                if value not in self._step_keys and len(self._step_keys) < MAX_STEP_METRICS:
                    self._step_keys.insert(len(self._step_keys) - len(_DEFAULT_STEP_KEYS), value)
                    self._kinds.clear()  # a key seen before may be a step metric now

    def _run(self, data: bytes, update: Update) -> None:
        info = _run_info(data)
        for fact, value in (("project", info.project), ("run_name", info.name or info.run_id), ("host", info.host)):
            if value:
                update.facts[fact] = value
        if info.start_time is not None:
            update.facts["start_time"] = info.start_time
            self._started = True
        if info.config is not None:
            self._config_record(info.config, update)

    def _exit(self, data: bytes, update: Update) -> None:
        code = 0
        for number, wire, value in pb.fields(data):
            if number == 1 and wire == pb.VARINT:
                code = pb.signed64(value)
        self._exit_code = code
        if code == 0:
            update.finished = True

    def _environment(self, data: bytes, update: Update) -> None:
        for number, wire, value in pb.fields(data):
            if number == 12 and wire == pb.LEN and value:
                update.facts["host"] = pb.text(value)
            elif number == 3 and wire == pb.LEN and not self._started:  # the run record's time wins
                start = _timestamp(value)
                if start is not None:
                    update.facts["start_time"] = start
                    self._started = True

    # --- console and verdict ---------------------------------------------------------------

    def _read_console(self, text: bytes, update: Update) -> None:
        console = self._console.feed(text)
        for note in console.notes:
            update.notes.append(f"console output: {note}")

    def _judge(self, update: Update) -> None:
        verdict = None
        if self._exit_code != 0:
            verdict = self._console.crash
            if verdict is not None:
                verdict = dataclasses.replace(verdict, last_step=self._last_step)
            elif self._exit_code is not None:
                verdict = Crash("exception", f"exited with code {self._exit_code}", last_step=self._last_step, source=self.name)
        if verdict != self._verdict:
            self._verdict = verdict
            update.crash = verdict

    def _note(self, update: Update, offset: int, message: str) -> None:
        prefix = f"{self.name}: " if self.name else ""
        self._notes.add(update.notes, f"{prefix}byte {offset}: {message}")


# A history item as wandb-core writes it: `nested_key` then `value_json`, every length one byte; the
# record ends with its `step` field. (JSON text holds no raw \x0a or \x12.)
_ITEM = re.compile(rb"\x0a([\x00-\x7f])\x12([\x00-\x7f])(.*?)\x82\x01([\x00-\x7f])([^\x0a\x12]*)", re.DOTALL)
_SUMMARY_KEY_BYTES = re.compile("|".join(sorted(SUMMARY_KEYS)).encode())
_KEY_CACHE_SIZE = 100_000


def _history_items(data: bytes) -> Iterable[tuple[bytes, float | None]]:
    """(key, number or None) of each item of a HistoryRecord.

    The usual shape is matched by one regex, and the lengths it implies checked against the length
    bytes, in total (a split that is off somewhere makes a total differ); a record not wholly of that
    shape (long keys or values, typed values) goes through the general decoder.
    """
    found = _ITEM.findall(data)
    if found:
        item_lengths, key_lengths, keys, value_lengths, values = zip(*found)
        covered = sum(b"".join(item_lengths)) + 2 * len(found)
        step = data[covered:]
        if (
            sum(b"".join(key_lengths)) == sum(map(len, keys))
            and sum(b"".join(value_lengths)) == sum(map(len, values))
            and covered == sum(map(len, keys)) + sum(map(len, values)) + 7 * len(found)
            and (not step or (step[0] == 0x12 and len(step) > 1 and step[1] == len(step) - 2))
        ):
            try:
                return zip(keys, list(map(float, values)))  # every value a number: the usual row
            except ValueError:
                return zip(keys, map(_json_number, values))
    items = []
    for number, wire, value in pb.fields(data):
        if number == 1 and wire == pb.LEN:
            key, item = _item(value)
            if key is not None:
                items.append((key, item))
    return items


def _item(data: bytes) -> tuple[bytes | None, Any]:
    """(key, number) of a History/Summary item, in general; the number is None for text, media, tables."""
    key_parts: list[bytes] = []
    value = None
    for number, wire, field in pb.fields(data):
        if wire == pb.LEN and number in (1, 2):  # key, nested_key
            key_parts.append(field)
        elif number in (16, 8) and wire == pb.LEN:  # value_json, json
            value = _json_number(field)
        elif number == 6 and wire == pb.I64:  # number
            value = pb.DOUBLE.unpack(field)[0]
        elif number == 5 and wire == pb.VARINT:  # integer (sint64)
            value = pb.zigzag(field)
    return (b".".join(key_parts) if key_parts else None), value


def _output_line(data: bytes) -> bytes:
    for number, wire, value in pb.fields(data):
        if number == 3 and wire == pb.LEN:
            return value
    return b""


def _json_number(raw: bytes) -> float | None:
    """A JSON number (NaN and ±Infinity as wandb writes them) from its text; None for anything else."""
    if not raw or raw[0] not in _NUMBER_START:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _whole(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _config_item(data: bytes) -> tuple[list[str], Any]:
    key = None
    nested: list[str] = []
    value = None
    for number, wire, field in pb.fields(data):
        if wire != pb.LEN:
            continue
        if number == 1:
            key = pb.text(field)
        elif number == 2:
            nested.append(pb.text(field))
        elif number == 16:
            try:
                value = json.loads(field)
            except (ValueError, RecursionError):
                value = None
    return (nested or ([key] if key else [])), value


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[path[-1]] = value


def _remove_path(tree: dict[str, Any], path: list[str]) -> None:
    node: object = tree
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _timestamp(data: bytes) -> float | None:
    """A google.protobuf.Timestamp as unix seconds."""
    seconds = nanos = 0
    for number, wire, value in pb.fields(data):
        if number == 1 and wire == pb.VARINT:
            seconds = pb.signed64(value)
        elif number == 2 and wire == pb.VARINT:
            nanos = value
    return seconds + nanos / 1e9 if seconds > 0 else None


class _RunRecord(NamedTuple):
    run_id: str | None
    project: str | None
    name: str | None
    host: str | None
    start_time: float | None
    config: bytes | None


def _run_info(data: bytes) -> _RunRecord:
    found: dict[int, Any] = {}
    for number, wire, value in pb.fields(data):
        if wire == pb.LEN and number in (1, 3, 4, 8, 13, 17):
            found[number] = value
    text = {number: pb.text(found[number]) or None for number in (1, 3, 8, 13) if number in found}
    start = _timestamp(found[17]) if 17 in found else None
    return _RunRecord(text.get(1), text.get(3), text.get(8), text.get(13), start, found.get(4))


# --- the files next to the transaction log ----------------------------------------------------


def read_config_yaml(data: bytes, name: str = "config.yaml") -> Update:
    """`files/config.yaml`: `{key: {value: v}}` (older wandb: `{desc: ..., value: v}`)."""
    update = Update(replace=True)
    try:
        tree = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError, ValueError):
        update.notes.append(f"{name}: not valid YAML")
        return update
    if not isinstance(tree, dict):
        update.notes.append(f"{name}: not a mapping")
        return update
    config = {
        key: entry["value"] if isinstance(entry, dict) and "value" in entry else entry
        for key, entry in tree.items()
        if key != "_wandb"
    }
    update.facts["config"] = flat_config(config)
    update.facts.update(facts_from_training_args(config))
    return update


def read_metadata_json(data: bytes, name: str = "wandb-metadata.json") -> Update:
    """`files/wandb-metadata.json`: the host and start time of the run."""
    update = Update(replace=True)
    try:
        meta = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        update.notes.append(f"{name}: not valid JSON")
        return update
    if not isinstance(meta, dict):
        update.notes.append(f"{name}: not a JSON object")
        return update
    if isinstance(meta.get("host"), str) and meta["host"]:
        update.facts["host"] = meta["host"]
    start = parse_time(meta.get("startedAt"))
    if start is not None:
        update.facts["start_time"] = start
    return update


_STATS_PID = re.compile(rb"Configure stats pid to (\d{1,9})\b")
DEBUG_LOG_HEAD = 64 * 1024


def read_debug_log(data: bytes, name: str = "debug.log") -> Update:
    """`logs/debug.log`: the training process's pid, which wandb logs first thing (`wandb_setup.py`).

    With the host from the run record it tells a live run from one killed without a word (SIGKILL
    leaves no exit record and no traceback).
    """
    update = Update(replace=True)
    found = _STATS_PID.search(data[:DEBUG_LOG_HEAD])
    if found is not None:
        update.facts["pid"] = int(found.group(1))
    return update


def read_output_log(data: bytes, name: str = "output.log") -> Update:
    """`files/output.log` read whole: wandb rewrites its last lines in place as the terminal would."""
    update = ConsoleLogReader(name).feed(data)
    update.replace = True
    return update


# --- what discovery needs: the run's names and its trainer's output dir -----------------------


@dataclasses.dataclass
class RunInfo:
    project: str | None = None
    name: str | None = None
    run_id: str | None = None
    output_dir: str | None = None


PEEK_BYTES = 1024 * 1024  # the run and config records come first; later ones are not looked for
_PEEKS_KEPT = 4096


class _Peek:
    """How far discovery has read the start of one `.wandb`, and what it found there."""

    def __init__(self, inode: int) -> None:
        self.inode = inode
        self.offset = 0
        self.framing = _Framing()
        self.info = RunInfo()


_peeks: dict[str, _Peek] = {}


def run_info(transaction_log: str | None, config_yaml: str | None = None, fs: FileSystem = LOCAL) -> RunInfo:
    """Project, run name, id and `output_dir` of a W&B run, from the first records of its `.wandb`,
    or from `files/config.yaml` when there is no `.wandb`. Each call reads only what was appended
    since the last one, and nothing past the first MiB."""
    if transaction_log is None:
        return RunInfo(output_dir=_output_dir_from_yaml(config_yaml, fs) if config_yaml else None)
    try:
        st = fs.stat(transaction_log)
    except OSError:
        return RunInfo()
    peek = _peeks.get(transaction_log)
    if peek is None or peek.inode != st.st_ino or st.st_size < peek.offset:
        if len(_peeks) >= _PEEKS_KEPT:
            _peeks.clear()
        peek = _peeks[transaction_log] = _Peek(st.st_ino)
    end = min(st.st_size, PEEK_BYTES)
    if peek.offset < end and not (peek.info.project and peek.info.output_dir):
        try:
            with fs.open(transaction_log) as handle:
                handle.seek(peek.offset)
                data = handle.read(end - peek.offset)
        except OSError:
            return dataclasses.replace(peek.info)
        peek.offset += len(data)
        for _, payload in peek.framing.feed(data):
            _peek_record(payload, peek.info)
    return dataclasses.replace(peek.info)


def _output_dir_from_yaml(path: str, fs: FileSystem) -> str | None:
    try:
        with fs.open(path) as handle:
            update = read_config_yaml(handle.read(PEEK_BYTES))
    except OSError:
        return None
    value = update.facts.get("config", {}).get("output_dir")
    return value if isinstance(value, str) else None


def _peek_record(payload: bytes, info: RunInfo) -> None:
    try:
        for number, wire, value in pb.fields(payload):
            if number == _RUN and wire == pb.LEN:
                run = _run_info(value)
                info.project, info.name, info.run_id = run.project, run.name, run.run_id
                if run.config is not None:
                    _output_dir_from_config(run.config, info)
            elif number == _CONFIG and wire == pb.LEN:
                _output_dir_from_config(value, info)
    except (pb.Malformed, UnicodeDecodeError):
        return


def _output_dir_from_config(data: bytes, info: RunInfo) -> None:
    for number, wire, value in pb.fields(data):
        if number == 1 and wire == pb.LEN:
            path, item = _config_item(value)
            if path == ["output_dir"] and isinstance(item, str) and item:
                info.output_dir = item
