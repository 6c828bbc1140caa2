"""Fuzzing (hypothesis): every reader and the rule-condition language, on arbitrary and mutated input.

The promise under test: any bytes give an `Update` (records and/or notes), never an exception; the
records do not depend on how the bytes were split into appends; a run directory full of corrupt
files never takes the monitor down; a corrupt tracker database is a problem SQLite reports, never
an exception, and nothing appears beside it; and any condition text gives a parsed rule or a
`ConditionError`, never another exception. Mutated inputs start from the real TRL runs in
`tests/fixtures/real_runs/`, the tracker files in `tests/fixtures/trackers/` and the other trainers'
logs (a window of a real file, then bytes flipped, inserted, deleted, duplicated, or replaced by
tokens known to be nasty: NaN, huge integers, ANSI escapes, torn UTF-8, deep nesting, tracebacks,
progress bars, W&B headers).

About 20 s in CI; for a wider, randomized search raise the examples per test (tests/search.py):
`SEARCH_SCALE=30 python -m pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from search import examples
from wandb_records import frame, history, payloads

from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.records import Record, Update
from rlhf_tui.core.sources.console_log import ConsoleLogReader
from rlhf_tui.core.sources.jsonl import JsonlReader
from rlhf_tui.core.sources.llamafactory import LlamaFactoryReader
from rlhf_tui.core.sources.mlflow import MlflowRun, list_runs as mlflow_runs
from rlhf_tui.core.sources.model_card import read_model_card
from rlhf_tui.core.sources.ptt import PttMetricsReader, read_critical_failure, read_metadata, read_postmortem
from rlhf_tui.core.sources.sqlite import DatabaseProblem, ReadOnlyDatabase
from rlhf_tui.core.sources.tensorboard import TensorBoardReader, masked_crc32c
from rlhf_tui.core.sources.trackio import TrackioRun, list_runs as trackio_runs
from rlhf_tui.core.sources.trainer_state import read_trainer_state
from rlhf_tui.core.sources.wandb import WandbReader, read_config_yaml, read_debug_log, read_metadata_json, read_output_log
from rlhf_tui.rules.language import ConditionError, compile_expression, compile_template, parse

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "real_runs"
TRACKERS = FIXTURES / "trackers" / "launch"
OTHERS = FIXTURES / "other_trainers"
FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def corpus(pattern: str, folder: Path = REAL) -> list[bytes]:
    files = sorted(folder.glob(pattern))
    assert files, pattern
    return [path.read_bytes() for path in files]


METRICS = corpus("*/ptt/metrics.jsonl")
CONSOLE = corpus("*/train.log")
EVENTS = corpus("*/runs/*/events.out.tfevents.*")
TRAINER_STATES = corpus("*/checkpoint-*/trainer_state.json")
POSTMORTEMS = corpus("*/ptt/postmortem.json")
METADATA = corpus("*/ptt/run_metadata*.json")
MODEL_CARDS = corpus("*/README.md")
WANDB = corpus("wandb/*/run-*.wandb", TRACKERS)
OUTPUT_LOGS = corpus("wandb/*/files/output.log", TRACKERS)
TRAINER_LOGS = corpus("*/trainer_log.jsonl", OTHERS)
WANDB_CONFIGS = [b"_wandb:\n  value:\n    cli_version: 0.31.0\nlearning_rate:\n  value: 1.0e-05\nmax_steps:\n  desc: null\n  value: 30\n"]
WANDB_METADATA = [b'{"host": "gpu-7", "startedAt": "2026-12-04T00:20:18.123456Z", "program": "train.py", "args": ["--lr", "1e-5"]}']
DATABASES = corpus("trackio/*.db", TRACKERS) + corpus("mlflow.db", TRACKERS)

STREAM_READERS = {
    "jsonl": (JsonlReader, METRICS),
    "ptt": (PttMetricsReader, METRICS),
    "console": (ConsoleLogReader, CONSOLE),
    "tensorboard": (TensorBoardReader, EVENTS),
    "wandb": (WandbReader, WANDB),
    "llamafactory": (LlamaFactoryReader, TRAINER_LOGS),
}
DOCUMENT_READERS = {
    "trainer_state": (read_trainer_state, TRAINER_STATES),
    "postmortem": (read_postmortem, POSTMORTEMS),
    "critical_failure": (read_critical_failure, POSTMORTEMS),
    "metadata": (read_metadata, METADATA),
    "model_card": (read_model_card, MODEL_CARDS),
    "wandb_config": (read_config_yaml, WANDB_CONFIGS),
    "wandb_metadata": (read_metadata_json, WANDB_METADATA),
    "wandb_output": (read_output_log, OUTPUT_LOGS),
    "wandb_debug": (read_debug_log, [b"2026-12-04 00:35:36,955 INFO    MainThread:20212 [wandb_setup.py:_flush():81] Configure stats pid to 20212\n"]),
}

NASTY = [
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff\xfe",
    b"\xe2\x96",  # a torn UTF-8 block character, as tqdm draws
    b"NaN",
    b"-Infinity",
    b"1e999",
    b"99999999999999999999999",
    b"-9223372036854775809",
    b"9" * 400,
    b"[" * 3000,
    b'{"a":' * 3000,
    b'"step": ',
    b"'loss': ",
    b"{'loss': 'nan', 'epoch': '1e999'}",
    b"\x1b[31m",
    b"\x1b[A",
    b"\x1b]0;title\x07",
    b"[rank0]: ",
    b"Traceback (most recent call last):\n",
    b"  File \"x.py\", line 1, in <module>\n",
    b"RuntimeError: CUDA out of memory\n",
    b"100%|##########| 99999999999999999999/99999999999999999999 [00:01<00:00, 1.0it/s]",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",  # a huge TFRecord length
    b"\x00" * 12,
    b"---\n",
    b"!!python/object/apply:os.system ['true']\n",
    b":W&B\xe1\xbe\x00",  # a .wandb header in the middle
    b"\x00" * 7,  # a zeroed chunk header
    b"\x12\x00",  # an empty history step field
]

WINDOW = 8192


@st.composite
def mutated(draw, files: list[bytes]) -> bytes:
    """A window of a real file, then a few mutations."""
    data = draw(st.sampled_from(files))
    if len(data) > WINDOW:
        start = draw(st.one_of(st.just(0), st.integers(0, len(data) - 1)))
        data = data[start : start + WINDOW]
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "nasty", "delete", "duplicate", "truncate"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=32))
        elif kind == "nasty":
            data[at:at] = draw(st.sampled_from(NASTY))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 512))]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.sampled_from(["NaN", "0.5", ""])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6
)
KEYS = st.one_of(st.sampled_from(["loss", "dpo_loss", "win_rate", "rewards/chosen", "kl", "epoch", "eval_loss"]), st.text(max_size=6))
STEPS = st.one_of(st.integers(-3, 40), st.integers(), st.floats(), st.text(max_size=3))


@st.composite
def jsonl_lines(draw) -> bytes:
    """Lines shaped like the metric logs (flat, PTT, verl, header, footer), with any values in them."""
    lines = []
    for _ in range(draw(st.integers(1, 40))):
        values = draw(st.dictionaries(KEYS, JSON_VALUES, max_size=4))
        shape = draw(st.sampled_from(["flat", "ptt", "verl", "header", "footer", "summary", "any"]))
        step = draw(STEPS)
        if shape == "flat":
            obj = {"step": step, **values}
        elif shape == "ptt":
            obj = {"step": step, "timestamp": draw(st.one_of(st.text(max_size=32), JSON_SCALARS)), "metrics": values}
        elif shape == "verl":
            obj = {"step": step, "data": values}
        elif shape == "header":
            obj = {"type": "header", "trainer_type": draw(JSON_SCALARS), "writer": draw(st.sampled_from(["rlhf-top", "ptt", None]))}
        elif shape == "footer":
            obj = {"type": "footer", "status": draw(st.sampled_from(["completed", "failed"])), "timestamp": draw(JSON_SCALARS)}
        elif shape == "summary":
            obj = {"type": "summary", "metrics": values}
        else:
            obj = draw(JSON_VALUES)
        lines.append(json.dumps(obj))
    return ("\n".join(lines) + "\n").encode()


NUMBER_TEXT = st.one_of(st.floats().map(repr), st.integers().map(str), st.sampled_from(["nan", "-inf", "np.float64(0.5)", "x"]))


@st.composite
def console_lines(draw) -> bytes:
    """transformers console output: log dicts, progress bars, clearing segments, tracebacks, noise."""
    parts = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["dict", "eval", "bar", "clear", "traceback", "summary", "text"]))
        if kind in ("dict", "eval", "summary"):
            keys = draw(st.lists(KEYS, max_size=4)) + {"dict": ["loss"], "eval": ["eval_loss"], "summary": ["train_runtime"]}[kind]
            body = ", ".join(f"'{key}': '{draw(NUMBER_TEXT)}'" for key in keys)
            parts.append(f"{{{body}, 'epoch': '{draw(NUMBER_TEXT)}'}}\n")
        elif kind == "bar":
            total = draw(st.one_of(st.integers(0, 50), st.integers(0, 10**30)))
            done = draw(st.one_of(st.integers(0, 50), st.integers(0, 10**30)))
            parts.append(f"\r{draw(st.integers(0, 100)):3d}%|##  | {done}/{total} [00:01<00:02, 1.5it/s]")
        elif kind == "clear":
            parts.append("\r" + " " * draw(st.integers(1, 40)) + "\r")
        elif kind == "traceback":
            parts.append('Traceback (most recent call last):\n  File "t.py", line 1, in <module>\n')
            parts.append(draw(st.sampled_from(["RuntimeError: boom", "torch.OutOfMemoryError: CUDA out of memory", "KeyboardInterrupt", ""])) + "\n")
        else:
            parts.append(draw(st.text(max_size=40)) + draw(st.sampled_from(["\n", "\r", ""])))
    return "".join(parts).encode("utf-8", "surrogatepass")


def real_event_payloads() -> list[bytes]:
    payloads = []
    for data in EVENTS:
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, pos)
            payloads.append(data[pos + 12 : pos + 12 + length])
            pos += 16 + length
    return payloads


EVENT_PAYLOADS = real_event_payloads()


def framed(payload: bytes) -> bytes:
    """One TFRecord with valid checksums, so that the payload reaches the protobuf decoder."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc32c(length)) + payload + struct.pack("<I", masked_crc32c(payload))


@st.composite
def event_records(draw) -> bytes:
    """TFRecords whose checksums verify around real, mutated or random event protobufs."""
    records = []
    for _ in range(draw(st.integers(1, 20))):
        payload = bytearray(draw(st.sampled_from(EVENT_PAYLOADS)))
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(payload)))
            if draw(st.booleans()) and at < len(payload):
                payload[at] = draw(st.integers(0, 255))
            else:
                payload[at:at] = draw(st.binary(min_size=1, max_size=12))
        records.append(framed(bytes(draw(st.one_of(st.just(bytes(payload)), st.binary(max_size=64))))))
    return b"".join(records)


WANDB_PAYLOADS = [payload for data in WANDB for payload in payloads(data)]


@st.composite
def wandb_logs(draw) -> bytes:
    """.wandb files whose chunks verify around real, mutated or random records, some crossing blocks."""
    records = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["real", "mutated", "random", "history", "big"]))
        if kind == "real":
            records.append(draw(st.sampled_from(WANDB_PAYLOADS)))
        elif kind == "mutated":
            payload = bytearray(draw(st.sampled_from(WANDB_PAYLOADS)))
            for _ in range(draw(st.integers(1, 3))):
                at = draw(st.integers(0, len(payload)))
                payload[at:at] = draw(st.binary(min_size=1, max_size=8))
            records.append(bytes(payload))
        elif kind == "random":
            records.append(draw(st.binary(max_size=64)))
        elif kind == "history":
            row = draw(st.dictionaries(st.sampled_from(["train/loss", "eval/loss", "_step", "train/global_step", "x"]), JSON_VALUES, max_size=4))
            records.append(history(row))
        else:
            records.append(draw(st.sampled_from(WANDB_PAYLOADS)) * draw(st.integers(20, 200)))
    return frame(records)


@st.composite
def llamafactory_lines(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 30))):
        obj = {"current_steps": draw(STEPS), "total_steps": draw(STEPS), **draw(st.dictionaries(KEYS, JSON_VALUES, max_size=4))}
        lines.append(json.dumps(obj) if draw(st.booleans()) else json.dumps(draw(JSON_VALUES)))
    return ("\n".join(lines) + "\n").encode()


STRUCTURED = {
    "jsonl": jsonl_lines(),
    "ptt": jsonl_lines(),
    "console": console_lines(),
    "tensorboard": event_records(),
    "wandb": wandb_logs(),
    "llamafactory": llamafactory_lines(),
}


def any_input(files: list[bytes], structured=None):
    options = [st.binary(max_size=4096), mutated(files)]
    return st.one_of(*options, structured) if structured is not None else st.one_of(*options)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:])]


def checked(update) -> Update:
    """An Update with well-formed records and notes: what the run model is promised."""
    assert isinstance(update, Update)
    for record in update.records:
        assert isinstance(record, Record)
        assert type(record.step) is int
        assert isinstance(record.values, dict)
        assert all(isinstance(key, str) for key in record.values)
        assert record.phase in ("train", "eval")
    assert all(isinstance(note, str) for note in update.notes)
    return update


def series_of(updates: list[Update]) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """What the run model would store per key, values as repr so that NaN compares equal."""
    series: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for update in updates:
        for record in update.records:
            for key, value in record.values.items():
                series.setdefault((record.phase, key), []).append((record.step, repr(value)))
    return series


@FUZZ
@given(st.data())
def test_stream_readers_take_any_bytes_in_any_pieces(data):
    name = data.draw(st.sampled_from(sorted(STREAM_READERS)), label="reader")
    factory, files = STREAM_READERS[name]
    stream = data.draw(any_input(files, STRUCTURED[name]), label="bytes")
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8), label="cuts")
    reader = factory("fuzzed")
    for piece in pieces(stream, cuts):
        checked(reader.feed(piece))


@FUZZ
@given(st.data())
def test_stream_readers_give_the_same_series_however_the_bytes_are_split(data):
    """A live file is read in whatever pieces the writer's flushes left: the result must not care."""
    name = data.draw(st.sampled_from(sorted(STREAM_READERS)), label="reader")
    factory, files = STREAM_READERS[name]
    stream = data.draw(st.one_of(mutated(files), STRUCTURED[name]), label="bytes")
    cuts = data.draw(st.lists(st.integers(0, len(stream)), min_size=1, max_size=8), label="cuts")
    assert_split_invariant(factory, stream, cuts)


def assert_split_invariant(factory, stream: bytes, cuts: list[int]) -> None:
    whole = [factory("f").feed(stream)]
    reader = factory("f")
    split = [reader.feed(piece) for piece in pieces(stream, cuts)]
    assert series_of(split) == series_of(whole)


# Inputs the search above once found failing, kept so that every run tries them: (reader, file, cuts).
FOUND = [
    # A mutated events file with step 1's loss record at both ends, cut after the first copy: the
    # reader merged the two copies when read at once and gave two points when split.
    ("tensorboard", "tensorboard_duplicated_event.tfevents", [48]),
]


@pytest.mark.parametrize(("name", "file", "cuts"), FOUND)
def test_inputs_the_search_once_found_stay_fixed(name, file, cuts):
    factory, _ = STREAM_READERS[name]
    assert_split_invariant(factory, (FIXTURES / "fuzz" / file).read_bytes(), cuts)


DEEP_FRONT_MATTER = b"---\ntags: " + b"[" * 5000 + b"]" * 5000 + b"\n---\n"


@FUZZ
@given(st.sampled_from(sorted(DOCUMENT_READERS)).flatmap(lambda name: st.tuples(st.just(name), any_input(DOCUMENT_READERS[name][1]))))
@example(("model_card", DEEP_FRONT_MATTER))
@example(("trainer_state", b'{"a":' * 100_000))
def test_document_readers_take_any_bytes(case):
    name, data = case
    read, _ = DOCUMENT_READERS[name]
    update = checked(read(data, "fuzzed.json"))
    assert update.replace


RUN_FILES = {
    "ptt/metrics.jsonl": (METRICS, STRUCTURED["ptt"]),
    "log.jsonl": (METRICS, STRUCTURED["jsonl"]),
    "train.log": (CONSOLE, STRUCTURED["console"]),
    "runs/x/events.out.tfevents.1.host.1.0": (EVENTS, STRUCTURED["tensorboard"]),
    "checkpoint-5/trainer_state.json": (TRAINER_STATES, None),
    "ptt/postmortem.json": (POSTMORTEMS, None),
    "ptt/run_metadata.json": (METADATA, None),
    "README.md": (MODEL_CARDS, None),
    "wandb/offline-run-1-x/run-x.wandb": (WANDB, STRUCTURED["wandb"]),
    "wandb/offline-run-1-x/files/config.yaml": (WANDB_CONFIGS, None),
    "trainer_log.jsonl": (TRAINER_LOGS, STRUCTURED["llamafactory"]),
    "mlflow.db": (DATABASES, None),
    "trackio/project.db": (DATABASES, None),
}
HUGE_STEPS = b"".join(b'{"step": %d, "loss": 0.5}\n' % (2**64 + i) for i in range(20))
HUGE_VALUES = b"".join(b'{"step": %d, "loss": %s}\n' % (i, b"9" * 400) for i in range(1, 20))
NEGATIVE_STEP = b'{"step": -101, "loss": 0.5}\n'


def scalar_event(step_varint: bytes) -> bytes:
    """A framed `train/loss` scalar event whose step is the given varint bytes."""
    tag = b"train/loss"
    value = b"\x0a" + bytes([len(tag)]) + tag + b"\x15" + struct.pack("<f", 0.5)
    summary = b"\x0a" + bytes([len(value)]) + value
    return framed(b"\x09" + struct.pack("<d", 1.7e9) + b"\x10" + step_varint + b"\x2a" + bytes([len(summary)]) + summary)


OVERLONG_STEP = scalar_event(b"\xff" * 9 + b"\x7f")  # a 10-byte varint: 2**70 - 1, beyond int64


def run_directory_contents():
    names = st.lists(st.sampled_from(sorted(RUN_FILES)), min_size=1, max_size=4, unique=True)
    return names.flatmap(lambda chosen: st.tuples(*(any_input(*RUN_FILES[n]).map(lambda b, n=n: (n, b)) for n in chosen)))


@settings(FUZZ, max_examples=examples(50))
@given(run_directory_contents())
@example((("log.jsonl", HUGE_STEPS),))
@example((("log.jsonl", HUGE_VALUES),))
@example((("log.jsonl", NEGATIVE_STEP),))
@example((("runs/x/events.out.tfevents.1.host.1.0", OVERLONG_STEP),))
def test_monitor_survives_a_run_directory_of_corrupt_files(contents):
    """Through discovery, tailing, readers and the run model: nothing raises, no reader fails."""
    with tempfile.TemporaryDirectory() as root:
        for name, payload in contents:
            path = Path(root, "run", name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        monitor = Monitor([root])
        monitor.scan()
        monitor.catch_up()
        for run in monitor.runs.values():
            run.lifecycle()
            assert not [note for note in run.notes if "reader error" in note]


@settings(FUZZ, max_examples=examples(50))
@given(mutated(DATABASES))
def test_database_readers_take_any_mutation_of_a_real_store(data):
    """A database is parsed by SQLite itself: whatever it says becomes a problem, never an exception."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "store.db")
        with open(path, "wb") as handle:
            handle.write(data)
        database = ReadOnlyDatabase(path)
        try:
            with database.connect() as connection:
                runs = trackio_runs(connection, "store") or mlflow_runs(connection) or []
        except DatabaseProblem:
            runs = []
        for source in [TrackioRun(database, "x"), MlflowRun(database, "x"), *(TrackioRun(database, run.key) for run in runs)]:
            update = source.read()
            if update is not None:
                checked(update)
        assert sorted(os.listdir(directory)) == ["store.db"]


# --- the rule-condition language ------------------------------------------------------------

WORDS = [
    "loss", "win_rate", "kl", "reward", "eval_loss", "nosuchrole", "step", "points", "progress",
    "beta", "no_signal_loss", "config.lr", "ln2", "pi", "mean", "min", "max", "std", "slope", "last",
    "baseline", "drop", "rise", "spike", "zscore", "nonfinite", "abs", "sqrt", "exp", "log", "count",
    "highest", "lowest", "and", "or", "not", "for", "(", ")", ",", "<", "<=", ">", ">=", "==", "!=",
    "+", "-", "*", "/", "0", "1", "2.5", "1e400", "-1", "99999999999999999999", ".5", "1e-9", "{", "}",
]
CONDITIONS = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join),
)


@FUZZ
@given(CONDITIONS)
@example("(" * 3000 + "loss" + ")" * 3000 + " > 0")
@example("-" * 3000 + "1 > 0")
@example("not " * 3000 + "loss > 1")
@example("loss > 1 for 1e400")
def test_condition_language_parses_or_says_why(text):
    for attempt in (
        lambda: parse(text),
        lambda: compile_expression(text, kind="boolean"),
        lambda: compile_expression(text, scope="run", allow_state=False),
        lambda: compile_template(text),
    ):
        try:
            attempt()
        except ConditionError as error:
            assert str(error)
