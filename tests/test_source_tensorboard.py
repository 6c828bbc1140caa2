import json
import math
import random
import struct
from pathlib import Path

import numpy
import pytest
import needs
from hypothesis import given, settings
from hypothesis import strategies as st
from protobuf_wire import field
from search import examples

from rlhf_tui.core.records import Record, Update
from rlhf_tui.core.metrics import SUMMARY_KEYS
from rlhf_tui.core.sources.protobuf import Malformed
from rlhf_tui.core.sources.tensorboard import (
    TensorBoardReader,
    _parse_any_event,
    _parse_event,
    crc32c,
    crc32c_python,
    masked_crc32c,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tensorboard"
RUNS = ["dpo_crash", "dpo_stuck", "grpo_small", "sft_small"]


def events_bytes(run: str) -> bytes:
    (path,) = (FIXTURES / run).glob("events.out.tfevents.*")
    return path.read_bytes()


def read_whole(data: bytes) -> Update:
    return TensorBoardReader("events").feed(data)


def read_in_pieces(data: bytes, cuts: list[int]) -> Update:
    reader = TensorBoardReader("events")
    update = Update()
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in zip(bounds, bounds[1:]):
        update.merge(reader.feed(data[start:end]))
    return update


def merged(records: list[Record]) -> dict[tuple[int, str], dict[str, float]]:
    """Records with the same step and phase folded together, as the run model does."""
    out: dict[tuple[int, str], dict[str, float]] = {}
    for record in records:
        out.setdefault((record.step, record.phase), {}).update(record.values)
    return out


def points(records: list[Record]) -> set[tuple[int, str, str, float]]:
    return {(r.step, r.phase, key, value) for r in records for key, value in r.values.items()}


def as_float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every TFRecord of a well-formed file."""
    spans = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        spans.append((pos, pos + 16 + length))
        pos += 16 + length
    return spans


def tensor_value(tag: str, tensor: bytes, plugin: str) -> bytes:
    metadata = field(1, 2, field(1, 2, plugin.encode()))
    return field(1, 2, tag.encode()) + field(8, 2, tensor) + field(9, 2, metadata)


def simple_value(tag: str, value: float) -> bytes:
    return field(1, 2, tag.encode()) + field(2, 5, struct.pack("<f", value))


def event(step: int, *values: bytes, wall_time: float = 1000.0) -> bytes:
    body = field(1, 1, struct.pack("<d", wall_time)) + field(2, 0, step)
    summary = b"".join(field(1, 2, value) for value in values)
    return body + field(5, 2, summary)


def frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def test_crc32c_matches_the_standard_check_value():
    assert crc32c_python(b"123456789") == 0xE3069283
    assert crc32c_python(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283


def test_crc32c_implementations_agree():
    if crc32c is crc32c_python:
        pytest.skip("google-crc32c is not installed")
    data = random.Random(3).randbytes(4096)
    for size in (0, 1, 7, 8, 45, 4096):
        assert crc32c(data[:size]) == crc32c_python(data[:size])


@pytest.mark.parametrize("run", RUNS)
def test_real_file_matches_trainer_state(run):
    update = read_whole(events_bytes(run))
    state = json.loads((FIXTURES / run / "trainer_state.json").read_text())

    assert update.notes == []
    by_step = merged(update.records)
    assert all(phase == "train" for _, phase in by_step)
    steps = [step for step, _ in by_step]
    assert steps == list(range(1, len(steps) + 1))
    logged = [entry for entry in state["log_history"] if "train_runtime" not in entry]
    assert len(logged) == state["global_step"]
    for entry in logged:
        values = by_step[(entry["step"], "train")]
        expected = {key: value for key, value in entry.items() if key != "step"}
        assert set(values) == set(expected)
        for key, value in expected.items():
            assert values[key] == as_float32(value), (entry["step"], key)

    assert update.facts["writer"] == "tensorboard"
    assert update.facts["max_steps"] == state["max_steps"]
    assert update.facts["logging_steps"] == state["logging_steps"]
    config = update.facts["config"]
    assert config["max_steps"] == state["max_steps"]
    assert all(isinstance(value, (bool, int, float, str)) for value in config.values())


@pytest.mark.parametrize("run", ["dpo_stuck", "grpo_small", "sft_small"])
def test_finished_run_gives_its_summary_as_facts_not_a_step(run):
    update = read_whole(events_bytes(run))
    state = json.loads((FIXTURES / run / "trainer_state.json").read_text())

    assert update.finished
    assert set(update.facts["summary"]) == SUMMARY_KEYS
    assert all(not SUMMARY_KEYS & set(record.values) for record in update.records)
    # The summary's trailing train/epoch event joins the last step's record.
    assert [record.step for record in update.records] == list(range(1, state["max_steps"] + 1))


def test_crashed_run_is_not_finished_and_has_the_unsaved_last_step():
    update = read_whole(events_bytes("dpo_crash"))

    assert not update.finished
    assert "summary" not in update.facts
    assert update.records[-1].step == 11
    assert update.records[-1].values["loss"] == pytest.approx(0.6914148, rel=1e-6)


def test_stuck_dpo_loss_is_ln2_at_every_step():
    update = read_whole(events_bytes("dpo_stuck"))
    losses = [record.values["loss"] for record in update.records]
    assert len(losses) == 80
    assert all(loss == as_float32(math.log(2)) for loss in losses)
    assert update.facts["summary"]["train_loss"] == as_float32(0.6931471824645996)


SFT = events_bytes("sft_small")
SPLIT_INPUTS = {
    "clean": SFT,
    "corrupted": b"\x01junk" + SFT[:5000] + random.Random(1).randbytes(64) + SFT[5000:],
}


@pytest.mark.parametrize("kind", sorted(SPLIT_INPUTS))
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_any_split_reads_like_the_whole(kind, data):
    stream = SPLIT_INPUTS[kind]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    whole = read_whole(stream)

    pieces = read_in_pieces(stream, cuts)

    assert merged(pieces.records) == merged(whole.records)
    assert pieces.facts == whole.facts
    assert pieces.finished == whole.finished
    assert pieces.notes == whole.notes


@pytest.mark.parametrize("kind", sorted(SPLIT_INPUTS))
def test_byte_by_byte_feeding_reads_like_the_whole(kind):
    stream = SPLIT_INPUTS[kind]
    whole = read_whole(stream)
    pieces = read_in_pieces(stream, list(range(1, len(stream))))
    assert merged(pieces.records) == merged(whole.records)
    assert pieces.notes == whole.notes


def test_a_step_split_across_feeds_comes_out_as_two_records_of_that_step():
    stream = events_bytes("sft_small")
    spans = record_spans(stream)
    step_one = [span for span in spans if stream[span[0] : span[1]].find(b"train/loss") > 0][0]
    reader = TensorBoardReader()

    first = reader.feed(stream[: step_one[1]])
    second = reader.feed(stream[step_one[1] :])

    assert [(r.step, r.values) for r in first.records] == [(1, {"loss": as_float32(3.809649705886841)})]
    assert second.records[0].step == 1
    assert "loss" not in second.records[0].values
    assert "grad_norm" in second.records[0].values


def test_a_duplicated_record_keeps_the_first_value_wherever_the_feeds_are_cut():
    """Found by the fuzz suite: a copy of step 1's loss event later in the same step was merged into
    the open record when read at once (last value won) but came out as a second point when a feed
    ended between the two copies."""
    stream = frame(event(1, simple_value("train/loss", 0.5))) + frame(event(1, simple_value("train/loss", 0.25)))
    cut = len(stream) // 2

    whole = read_whole(stream)
    split = read_in_pieces(stream, [cut])

    assert [(r.step, r.values) for r in whole.records] == [(1, {"loss": 0.5})]
    assert [(r.step, r.values) for r in split.records] == [(1, {"loss": 0.5})]


def test_partial_record_waits_for_the_rest():
    stream = events_bytes("sft_small")
    last_loss = [span for span in record_spans(stream) if stream[span[0] : span[1]].find(b"train/loss") > 0][-1]
    reader = TensorBoardReader()
    first = reader.feed(stream[: last_loss[1] - 3])
    assert first.notes == []
    assert first.records[-1].step == 29
    second = reader.feed(stream[last_loss[1] - 3 :])
    assert second.notes == []
    assert (second.records[0].step, second.records[0].values["loss"]) == (30, as_float32(2.586146116256714))


def test_garbage_prefix_is_noted_and_skipped():
    stream = events_bytes("grpo_small")
    update = read_whole(b"this is not an events file\n" * 3 + stream)
    assert len(update.notes) == 1
    assert update.notes[0].startswith("events: byte 0: corrupt record header")
    assert update.records == read_whole(stream).records


def test_flipped_bytes_lose_only_the_damaged_record():
    stream = events_bytes("dpo_stuck")
    clean = read_whole(stream)
    spans = record_spans(stream)
    damaged = bytearray(stream)
    data_start, data_end = spans[100][0] + 12, spans[100][1] - 4
    damaged[(data_start + data_end) // 2] ^= 0x40  # inside the payload
    damaged[spans[500][0] + 2] ^= 0x01  # inside a length field

    update = read_whole(bytes(damaged))

    assert len(update.notes) == 2
    assert "checksum mismatch" in update.notes[0]
    assert f"byte {spans[100][0]}:" in update.notes[0]
    assert "corrupt record header" in update.notes[1]
    lost = points(clean.records) - points(update.records)
    assert len(lost) == 2
    assert points(update.records) < points(clean.records)


def test_truncated_record_in_the_middle_loses_only_itself():
    stream = events_bytes("sft_small")
    clean = read_whole(stream)
    _, end = record_spans(stream)[50]
    cut = stream[: end - 10] + stream[end:]

    update = read_whole(cut)

    assert len(update.notes) == 1
    assert len(points(clean.records) - points(update.records)) == 1
    assert points(update.records) < points(clean.records)
    assert update.finished


@settings(max_examples=examples(100), deadline=None)
@given(flips=st.dictionaries(st.integers(0, len(SFT) - 1), st.integers(1, 255), min_size=1, max_size=20))
def test_random_damage_is_noted_and_invents_no_points(flips):
    damaged = bytearray(SFT)
    for pos, mask in flips.items():
        damaged[pos] ^= mask

    update = read_whole(bytes(damaged))

    assert update.notes
    assert points(update.records) <= points(read_whole(SFT).records)


@settings(max_examples=examples(200), deadline=None)
@given(junk=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=5))
def test_arbitrary_bytes_never_raise(junk, cuts):
    read_in_pieces(junk, [cut for cut in cuts if cut <= len(junk)])


@settings(max_examples=examples(300), deadline=None)
@given(payloads=st.lists(st.binary(max_size=200), min_size=1, max_size=5))
def test_checksummed_garbage_payloads_never_raise(payloads):
    stream = b"".join(frame(payload) for payload in payloads)
    update = read_whole(stream + frame(event(7, simple_value("train/loss", 1.5))))
    assert (7, "train", "loss", 1.5) in points(update.records)


@settings(max_examples=examples(300), deadline=None)
@given(
    tag=st.text(max_size=130),
    step=st.integers(-(2**63), 2**63 - 1),
    wall_time=st.floats(width=64),
    value=st.floats(width=32),
    damage=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=2),
)
def test_scalar_fast_path_agrees_with_the_general_decoder(tag, step, wall_time, value, damage):
    payload = bytearray(event(step, simple_value(tag, value), wall_time=wall_time))
    for pos, byte in damage:
        if pos < len(payload):
            payload[pos] = byte

    def outcome(parse):
        try:
            return repr(parse(bytes(payload)))
        except Malformed:
            return "malformed"

    assert outcome(_parse_event) == outcome(_parse_any_event)


def test_undecodable_event_is_noted():
    stream = frame(b"\x0a\xff\xff") + frame(event(3, simple_value("train/loss", 2.0)))
    update = read_whole(stream)
    assert len(update.notes) == 1
    assert "does not decode" in update.notes[0]
    assert update.records == [Record(3, 1000.0, {"loss": 2.0}, "train")]


def test_oversized_record_is_skipped_without_buffering_it():
    length = (1 << 24) + 10
    header = struct.pack("<Q", length)
    big_header = header + struct.pack("<I", masked_crc32c(header))
    good = frame(event(4, simple_value("train/loss", 0.5)))
    reader = TensorBoardReader()

    notes = reader.feed(big_header).notes
    for _ in range(length // (1 << 20)):
        assert reader.feed(bytes(1 << 20)).records == []
    update = reader.feed(bytes(length % (1 << 20) + 4) + good)

    assert len(notes) == 1
    assert "skipped" in notes[0]
    assert update.notes == []
    assert update.records == [Record(4, 1000.0, {"loss": 0.5}, "train")]


def test_tags_map_to_phases_and_consecutive_same_step_events_group():
    stream = b"".join(
        frame(event(step, value))
        for step, value in [
            (5, simple_value("train/loss", 1.0)),
            (5, simple_value("train/rewards/chosen", 2.0)),
            (5, simple_value("eval/loss", 3.0)),
            (5, simple_value("custom", 4.0)),
            (5, simple_value("test/accuracy", 5.0)),
            (5, simple_value("train/", 5.5)),
            (6, simple_value("train/loss", 6.0)),
        ]
    )
    assert read_whole(stream).records == [
        Record(5, 1000.0, {"loss": 1.0, "rewards/chosen": 2.0}, "train"),
        Record(5, 1000.0, {"loss": 3.0}, "eval"),
        Record(5, 1000.0, {"custom": 4.0, "test/accuracy": 5.0, "train/": 5.5}, "train"),
        Record(6, 1000.0, {"loss": 6.0}, "train"),
    ]


def test_tensor_scalars_and_non_scalar_tensors():
    one_float = field(1, 0, 1) + field(4, 2, struct.pack("<f", 0.25))
    one_double = field(1, 0, 2) + field(6, 2, struct.pack("<d", 0.125))
    histogram = field(1, 0, 2) + field(4, 2, struct.pack("<6d", 0, 1, 2, 3, 4, 5))
    stream = frame(
        event(
            9,
            tensor_value("train/a", one_float, "scalars"),
            tensor_value("train/b", one_double, ""),
            tensor_value("train/c", histogram, "histograms"),
            tensor_value("train/d", histogram, "scalars"),
            tensor_value("train/e", one_float, "images"),
        )
    )
    assert read_whole(stream).records == [Record(9, 1000.0, {"a": 0.25, "b": 0.125}, "train")]


def test_negative_step_and_missing_wall_time():
    payload = field(2, 0, -3) + field(5, 2, field(1, 2, simple_value("loss", 1.0)))
    assert read_whole(frame(payload)).records == [Record(-3, None, {"loss": 1.0}, "train")]


def test_training_args_that_are_not_json_are_noted():
    text = field(1, 0, 7) + field(8, 2, b"{not json")
    update = read_whole(frame(event(0, tensor_value("args/text_summary", text, "text"))))
    assert len(update.notes) == 1
    assert "not a JSON object" in update.notes[0]
    assert "config" not in update.facts


def args_event(args_json: bytes) -> bytes:
    text = field(1, 0, 7) + field(8, 2, args_json)
    return frame(event(0, tensor_value("args/text_summary", text, "text")))


def test_training_args_give_a_flat_config_and_step_facts():
    args = {"max_steps": 100, "logging_steps": 10.0, "lr": 1e-5, "report_to": ["tensorboard"], "bf16": True}
    update = read_whole(args_event(json.dumps(args).encode()))
    assert update.facts == {
        "config": {"max_steps": 100, "logging_steps": 10.0, "lr": 1e-5, "report_to": "['tensorboard']", "bf16": True},
        "max_steps": 100,
        "logging_steps": 10,
    }


@pytest.mark.parametrize(
    "args_json",
    [
        b'{"max_steps": -1, "logging_steps": 0.1}',
        b'{"max_steps": Infinity, "logging_steps": NaN}',
        b'{"max_steps": true, "logging_steps": "10"}',
        b'{"max_steps": 1e400, "logging_steps": null}',
    ],
)
def test_training_args_without_usable_step_counts(args_json):
    update = read_whole(args_event(args_json))
    assert update.notes == []
    assert set(update.facts) == {"config"}


def test_too_many_problems_are_capped():
    stream = b"".join(b"\xff" * 20 + frame(event(step, simple_value("loss", 1.0))) for step in range(50))
    update = read_whole(stream)
    assert len(update.notes) == 21
    assert update.notes[-1] == "events: further problems not reported"
    assert len(update.records) == 50


def test_file_written_by_torch_summary_writer(tmp_path):
    tensorboard = needs.module("torch.utils.tensorboard", "pip install -e '.[trl,tensorboard]'")
    writer = tensorboard.SummaryWriter(log_dir=str(tmp_path))
    writer.add_text("args", json.dumps({"max_steps": 3, "logging_steps": 1}))
    writer.add_scalar("train/loss", 0.5, 1)
    writer.add_scalar("train/grad_norm", float("nan"), 1)
    writer.add_scalar("train/loss", float("inf"), 2)
    writer.add_scalar("train/grad_norm", float("-inf"), 2)
    writer.add_scalar("eval/loss", 0.75, 2)
    writer.add_scalar("train/loss", 0.25, 3, new_style=True)
    writer.add_scalar("train/kl", 0.1, 3, new_style=True, double_precision=True)
    writer.add_histogram("train/weights", numpy.array([1.0, 2.0, 3.0]), 3)
    writer.add_scalar("train/train_loss", 0.4, 3)
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")

    update = read_whole(path.read_bytes())

    assert update.notes == []
    records = update.records
    assert [(r.step, r.phase) for r in records] == [(1, "train"), (2, "train"), (2, "eval"), (3, "train")]
    assert records[0].values["loss"] == 0.5
    assert math.isnan(records[0].values["grad_norm"])
    assert records[1].values == {"loss": math.inf, "grad_norm": -math.inf}
    assert records[2].values == {"loss": 0.75}
    assert records[3].values == {"loss": 0.25, "kl": 0.1}
    assert update.facts["max_steps"] == 3
    assert update.facts["summary"] == {"train_loss": as_float32(0.4)}
    assert update.finished
