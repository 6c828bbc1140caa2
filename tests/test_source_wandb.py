import json
import math
import random
import struct
from pathlib import Path

import pytest
import wandb_records as wr
from conftest import TRACKER_RUNS

from rlhf_tui.core.records import Update
from rlhf_tui.core.sources.wandb import (
    MAX_RECORD_BYTES,
    WandbReader,
    read_config_yaml,
    read_debug_log,
    read_metadata_json,
    read_output_log,
    run_info,
)

GRPO = next(TRACKER_RUNS.glob("wandb/*/run-*.wandb"), None)
RUNS = sorted(TRACKER_RUNS.glob("wandb/*/run-*.wandb"))


def real(name: str) -> Path:
    """The fixture run whose name (run_name) is `name`."""
    for path in RUNS:
        if WandbReader().feed(path.read_bytes()).facts.get("run_name") == name:
            return path
    raise LookupError(name)


def read(data: bytes, cuts: list[int] = ()) -> tuple[Update, WandbReader]:
    reader = WandbReader("run.wandb")
    update = Update()
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in zip(bounds, bounds[1:]):
        update.merge(reader.feed(data[start:end]))
    return update, reader


def steps(update: Update, phase: str = "train") -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for record in update.records:
        if record.phase == phase:
            merged.setdefault(record.step, {}).update(record.values)
    return merged


def file_of(*records: bytes) -> bytes:
    return wr.frame([wr.record(number, payload) for number, payload in enumerate(records, start=1)])


# --- the files wandb 0.31 wrote (tests/fixtures/trackers) -----------------------------------


def test_the_framing_is_understood_exactly_a_real_file_is_rebuilt_byte_for_byte_from_its_records():
    for path in RUNS:
        data = path.read_bytes()
        assert wr.frame(wr.payloads(data)) == data
    assert any(kind == 2 for path in RUNS for _, kind, _ in wr.chunks(path.read_bytes())), "a record crossing a block"


def test_a_finished_grpo_run_gives_every_logged_value_at_full_precision_and_its_facts():
    update, reader = read(real("grpo-ok").read_bytes())
    state = json.loads((TRACKER_RUNS / "out-grpo/checkpoint-4/trainer_state.json").read_text())

    assert update.notes == []
    by_step = steps(update)
    assert sorted(by_step) == [1, 2, 3, 4]
    for entry in state["log_history"]:
        if "train_runtime" in entry:
            continue
        logged = {key: value for key, value in entry.items() if key != "step"}
        assert by_step[entry["step"]] == logged  # the same float64s as trainer_state.json
    assert update.finished and reader.crash is None
    facts = update.facts
    assert (facts["writer"], facts["project"], facts["run_name"]) == ("wandb", "rlhf-top-tests", "grpo-ok")
    assert facts["max_steps"] == 4 and facts["logging_steps"] == 1
    assert set(facts["summary"]) == {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
    config = facts["config"]
    assert config["output_dir"] == "out-grpo" and config["num_generations"] == 4
    assert config["model/num_parameters"] > 0 and "_wandb" not in config
    assert all(not key.startswith("profiling/") for values in by_step.values() for key in values)


def test_a_crashed_dpo_run_has_the_traceback_from_its_console_records_and_exit_code_1():
    update, reader = read(real("dpo-crash").read_bytes())

    assert not update.finished
    assert sorted(steps(update)) == [1, 2] and sorted(steps(update, "eval")) == [2]
    assert "rewards/accuracies" in steps(update)[1] and "rewards/accuracies" in steps(update, "eval")[2]
    crash = reader.crash
    assert crash is not None and update.crash == crash
    assert crash.reason == "exception" and crash.exception == "RuntimeError: injected crash at step 3"
    assert crash.traceback.startswith("Traceback (most recent call last):")
    assert "in on_step_end" in crash.traceback and crash.last_step == 2


@pytest.mark.parametrize("seed", range(4))
def test_the_real_files_read_the_same_however_they_are_cut(seed):
    rng = random.Random(seed)
    for path in RUNS:
        data = path.read_bytes()
        whole, whole_reader = read(data)
        cuts = rng.sample(range(1, len(data)), 12)
        split, split_reader = read(data, cuts)
        assert [(r.step, r.phase, r.values) for r in split.records] == [(r.step, r.phase, r.values) for r in whole.records]
        assert split.facts == whole.facts and split.finished == whole.finished
        assert split_reader.crash == whole_reader.crash


def test_a_live_file_shows_each_step_as_soon_as_its_record_is_complete():
    data = real("grpo-ok").read_bytes()
    reader = WandbReader()
    seen = []
    for end in range(0, len(data), 512):
        seen.extend(record.step for record in reader.feed(data[end : end + 512]).records if record.phase == "train")
    assert sorted(set(seen)) == [1, 2, 3, 4]


def test_discovery_info_names_the_run_and_its_output_dir():
    info = run_info(str(real("dpo-crash")))
    assert (info.project, info.name, info.output_dir) == ("rlhf-top-tests", "dpo-crash", "out-dpo")
    assert info.run_id and info.run_id in real("dpo-crash").name


# --- records built here, framed as wandb-core frames them ---------------------------------


def test_steps_come_from_the_declared_step_metric_then_train_global_step_then_wandb_step():
    data = file_of(
        wr.history({"loss": 0.5, "_step": 0}),
        wr.metric(glob="eval/*", step_metric="eval/global_step"),
        wr.history({"eval/loss": 0.4, "eval/global_step": 7, "_step": 1}),
        wr.history({"train/loss": 0.3, "train/global_step": 9, "_step": 2}),
    )
    update, _ = read(data)
    assert [(r.step, r.phase, r.values) for r in update.records] == [
        (0, "train", {"loss": 0.5}),
        (7, "eval", {"loss": 0.4}),
        (9, "train", {"loss": 0.3}),
    ]


def test_profiling_rows_are_not_steps_and_values_that_are_not_numbers_are_left_out():
    data = file_of(
        wr.history({"profiling/Time taken: GRPOTrainer.compute_loss": 0.2, "train/global_step": 0, "_step": 0}),
        wr.history({"train/loss": "NaN", "train/kl": "Infinity", "train/text": "hi", "train/table": {"_type": "table"},
                    "train/flag": True, "train/global_step": 1, "_timestamp": 1.8e9, "_runtime": 3, "_step": 1}),
    )
    update, _ = read(data)
    (record,) = update.records
    assert record.step == 1 and record.time == 1.8e9
    assert set(record.values) == {"loss", "kl"}
    assert math.isnan(record.values["loss"]) and record.values["kl"] == math.inf


def test_typed_history_values_are_read_too():
    number = wr.field(1, wr.field(2, "train/loss") + wr.field(6, struct.pack("<d", 0.25), wire=1))
    integer = wr.field(1, wr.field(2, "train/global_step") + wr.field(5, 3 << 1))  # sint64, zigzag
    nested = wr.field(1, wr.field(2, "train") + wr.field(2, "lr") + wr.field(16, "1e-5"))
    update, _ = read(file_of(wr.field(2, number + integer + nested)))
    (record,) = update.records
    assert record.step == 3 and record.values == {"loss": 0.25, "train.lr": 1e-5}


def test_exit_code_zero_is_finished_even_after_a_traceback_was_printed():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: caught\n'
    update, reader = read(file_of(wr.output(traceback, stdout=False), wr.exit_record(0)))
    assert update.finished and reader.crash is None


def test_a_traceback_is_a_crash_at_once_and_the_exit_code_alone_is_one_too():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nRuntimeError: CUDA out of memory\n'
    reader = WandbReader()
    reader.feed(file_of(wr.history({"train/loss": 1.0, "train/global_step": 5}), wr.output(traceback)))
    assert (reader.crash.reason, reader.crash.last_step) == ("oom", 5)

    update, reader = read(file_of(wr.exit_record(-9)))
    assert not update.finished and reader.crash.label == "exited with code -9"


def test_config_records_update_and_remove_nested_keys():
    remove = wr.field(5, wr.field(2, wr.field(1, "dropped")))
    nested = wr.field(5, wr.field(1, wr.field(2, "model") + wr.field(2, "depth") + wr.field(16, "2")))
    data = file_of(
        wr.run("abc", "proj", name="sweep-3"),
        wr.config({"learning_rate": 1e-5, "dropped": 1, "max_steps": 10, "loss_type": ["sigmoid"], "beta": 0.1}),
        remove,
        nested,
    )
    update, _ = read(data)
    assert update.facts["config"] == {"learning_rate": 1e-5, "max_steps": 10, "loss_type": "['sigmoid']", "beta": 0.1, "model.depth": 2}
    assert (update.facts["max_steps"], update.facts["loss_type"], update.facts["beta"]) == (10, "sigmoid", 0.1)
    assert (update.facts["project"], update.facts["run_name"], update.facts["host"]) == ("proj", "sweep-3", "box")
    assert update.facts["start_time"] == 1_800_000_000


def test_a_corrupt_chunk_is_a_note_and_reading_resumes_at_the_next_good_chunk():
    rows = [wr.history({"train/loss": step / 10, "train/global_step": step}) for step in range(1, 41)]
    data = bytearray(file_of(*rows))
    offsets = [pos for pos, _, _ in wr.chunks(bytes(data))]
    data[offsets[10] + 12] ^= 0xFF
    update, _ = read(bytes(data))
    assert sorted(steps(update)) == [step for step in range(1, 41) if step != 11]
    assert len(update.notes) == 1 and "corrupt chunk" in update.notes[0]
    assert update.notes[0].startswith(f"run.wandb: byte {offsets[10]}:")


def test_a_record_torn_across_blocks_is_dropped_whole_and_the_next_one_read():
    big = wr.history({"train/global_step": 1, "train/blob": "x" * 40_000, "train/loss": 0.5})
    data = bytearray(file_of(big, wr.history({"train/loss": 0.25, "train/global_step": 2})))
    middle = [pos for pos, kind, _ in wr.chunks(bytes(data)) if kind == 4][0]  # the LAST piece of `big`
    data[middle + 20] ^= 0x01
    update, _ = read(bytes(data))
    assert steps(update) == {2: {"loss": 0.25}}
    assert any("corrupt chunk" in note for note in update.notes)


def test_a_truncated_file_keeps_what_it_had_and_waits_for_the_rest():
    data = file_of(*(wr.history({"train/loss": 0.5, "train/global_step": step}) for step in (1, 2, 3)))
    reader = WandbReader()
    update = reader.feed(data[:-5])
    assert sorted(steps(update)) == [1, 2] and update.notes == []
    assert sorted(steps(reader.feed(data[-5:]))) == [3]


def test_a_file_that_is_not_a_wandb_log_is_a_note_not_an_error():
    update, reader = read(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    assert update.records == [] and reader.crash is None
    assert update.notes[0] == "run.wandb: byte 0: no W&B file header (not a .wandb transaction log?)"
    assert len(update.notes) <= 21


def test_a_newer_store_version_is_noted_and_read_as_version_0():
    data = wr.frame([wr.record(1, wr.history({"train/loss": 1.0, "_step": 4}))], file_header=b":W&B\xe1\xbe\x01")
    update, _ = read(data)
    assert update.notes == ["run.wandb: byte 0: store version 1, read as version 0"]
    assert sorted(steps(update)) == [4]


def test_a_record_over_the_size_limit_is_skipped_without_being_held():
    huge = wr.history({"train/global_step": 1, "train/blob": "x" * (MAX_RECORD_BYTES + 10)})
    data = file_of(huge, wr.history({"train/loss": 0.25, "train/global_step": 2}))
    update, _ = read(data, cuts=list(range(0, len(data), 1 << 20)))
    assert steps(update) == {2: {"loss": 0.25}}
    assert any("over 16 MiB skipped" in note for note in update.notes)


def test_records_match_wandbs_own_protobuf_definitions():
    pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    payload = wr.record(7, wr.history({"train/loss": 0.5, "train/global_step": 3}))
    parsed = pb2.Record.FromString(payload)
    assert parsed.num == 7 and [(list(i.nested_key), i.value_json) for i in parsed.history.item] == [
        (["train/loss"], "0.5"),
        (["train/global_step"], "3"),
    ]
    assert pb2.Record.FromString(wr.record(1, wr.exit_record(-9))).exit.exit_code == -9
    run = pb2.Record.FromString(wr.record(1, wr.run("abc", "proj", name="n"))).run
    assert (run.run_id, run.project, run.display_name, run.start_time.seconds) == ("abc", "proj", "n", 1_800_000_000)


# --- the files beside the log ---------------------------------------------------------------


def test_config_yaml_of_online_runs_gives_the_config():
    data = b"_wandb:\n  value:\n    cli_version: 0.31.0\nlearning_rate:\n  value: 1.0e-05\nmax_steps:\n  desc: null\n  value: 30\n"
    update = read_config_yaml(data)
    assert update.replace and update.facts == {"config": {"learning_rate": 1e-5, "max_steps": 30}, "max_steps": 30}
    assert read_config_yaml(b"!!python/object/apply:os.system ['true']\n").notes == ["config.yaml: not valid YAML"]
    assert read_config_yaml(b"- a list\n").notes == ["config.yaml: not a mapping"]


def test_metadata_json_gives_host_and_start_time():
    update = read_metadata_json(b'{"host": "gpu-7", "startedAt": "2026-12-04T00:20:18.123456Z", "program": "train.py"}')
    assert update.facts["host"] == "gpu-7" and update.facts["start_time"] == pytest.approx(1796343618.123456)
    assert read_metadata_json(b"{not json").notes == ["wandb-metadata.json: not valid JSON"]


def test_output_log_alone_still_shows_the_crash():
    text = real("dpo-crash").parent.joinpath("files/output.log").read_bytes()
    update = read_output_log(text)
    assert update.replace and update.crash.exception == "RuntimeError: injected crash at step 3"


def test_debug_log_gives_the_training_processes_pid():
    head = b"2026-12-04 00:35:36,955 INFO    MainThread:20212 [wandb_setup.py:_flush():81] Configure stats pid to 20212\n"
    assert read_debug_log(head).facts == {"pid": 20212}
    assert read_debug_log(b"x" * (70 * 1024) + head).facts == {}  # only the head is looked at
