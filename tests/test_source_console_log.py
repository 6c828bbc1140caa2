"""The console-log reader against real TRL and Trainer logs, crash signatures, splits and junk."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.core.records import CRASH_REASONS, READER_NOTES, Update
from rlhf_tui.core.sources.console_log import MAX_SEGMENT_BYTES, ConsoleLogReader

FIXTURES = Path(__file__).parent / "fixtures" / "console"
REAL_RUNS = ("dpo_crash", "dpo_stuck", "grpo_small", "sft_small")
# transformers 5.24 Trainer, logging_steps=5, eval every 10 steps; fast steps (the bar before a dict
# lags) and slow ones (0.15 s per step)
TRAINER_RUNS = ("trainer_logging5_fast", "trainer_logging5_slow")
CLEAR = b"\r" + b" " * 46 + b"\r"


def read_whole(data: bytes) -> tuple[ConsoleLogReader, Update]:
    reader = ConsoleLogReader("train.log")
    return reader, reader.feed(data)


def read_fixture(name: str) -> tuple[ConsoleLogReader, Update]:
    return read_whole((FIXTURES / name).read_bytes())


def read_in_pieces(data: bytes, cuts: list[int]) -> tuple[ConsoleLogReader, Update]:
    reader = ConsoleLogReader("train.log")
    merged = Update()
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        merged.merge(reader.feed(data[start:cut]))
        start = cut
    return reader, merged


def comparable(records):
    """Records with NaN made comparable (NaN != NaN)."""
    return [(r.step, r.time, r.phase, {k: repr(v) for k, v in r.values.items()}) for r in records]


def steps(update: Update, phase: str = "train") -> list[int]:
    return [r.step for r in update.records if r.phase == phase]


# --- the real runs --------------------------------------------------------------------------


@pytest.mark.parametrize("run", REAL_RUNS + TRAINER_RUNS)
def test_real_log_agrees_with_checkpoint_log_history(run):
    _, update = read_fixture(f"{run}/train.log")
    state = json.loads((FIXTURES / run / "trainer_state.json").read_text())
    history = [entry for entry in state["log_history"] if "train_runtime" not in entry]
    assert len(update.records) >= len(history)
    for record, entry in zip(update.records, history):
        phase = "eval" if "eval_loss" in entry else "train"
        printed = {
            key.removeprefix("eval_"): float(format(value, ".4g"))
            for key, value in entry.items()
            if key != "step"
        }
        assert (record.step, record.phase, record.values) == (entry["step"], phase, printed)


@pytest.mark.parametrize(
    "run, last_step",
    [("dpo_crash", 11), ("dpo_stuck", 80), ("grpo_small", 40), ("sft_small", 30)],
)
def test_real_log_steps_are_consecutive(run, last_step):
    _, update = read_fixture(f"{run}/train.log")
    assert steps(update) == list(range(1, last_step + 1))
    assert update.notes == []


def test_real_crash_run_ends_crashed_with_its_runtime_error():
    reader, update = read_fixture("dpo_crash/train.log")
    crash = update.crash
    assert crash is not None and crash == reader.crash
    assert crash.reason == "exception"
    assert crash.label == "RuntimeError"
    assert crash.exception == (
        "RuntimeError: deliberate crash injected at global_step=12 (holdout dpo_crash)"
    )
    assert crash.last_step == 11
    assert crash.traceback.startswith("Traceback (most recent call last):\n  File ")
    assert crash.traceback.endswith(crash.exception)
    assert "18%" not in crash.traceback
    assert crash.source == "train.log"
    assert not update.finished
    assert update.facts["max_steps"] == 60


@pytest.mark.parametrize(
    "run, max_steps, train_loss",
    [("dpo_stuck", 80, 0.6931), ("grpo_small", 40, 0.02027), ("sft_small", 30, 2.864)],
)
def test_real_finished_runs_are_finished_with_their_summary(run, max_steps, train_loss):
    reader, update = read_fixture(f"{run}/train.log")
    assert update.finished
    assert update.crash is None and reader.crash is None
    assert update.facts["max_steps"] == max_steps
    summary = update.facts["summary"]
    assert summary["train_loss"] == train_loss
    assert {"train_runtime", "train_samples_per_second", "train_steps_per_second"} <= summary.keys()
    assert "epoch" not in summary
    assert update.records[-1].step == max_steps
    assert "train_runtime" not in update.records[-1].values


# --- steps ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", TRAINER_RUNS)
def test_step_is_the_bar_redraw_after_the_dict_not_a_count_of_dicts(run):
    _, update = read_fixture(f"{run}/train.log")
    assert steps(update) == [5, 10, 15, 20, 25, 30]
    assert steps(update, "eval") == [10, 20, 30]
    assert update.finished and update.facts["max_steps"] == 30


def test_bar_before_a_dict_lags_and_is_not_its_step():
    log = (
        b"\r  0%|          | 0/30 [00:00<?, ?it/s]"
        + CLEAR + b"{'loss': '3.81', 'epoch': '0.03125'}\n"
        + b"\r  3%|3         | 1/30 [00:00<00:00, 39.67it/s]"
        + CLEAR + b"{'loss': '3.606', 'epoch': '0.0625'}\n"
        + b"\r  7%|7         | 2/30 [00:00<00:00, 46.82it/s]"
        + CLEAR + b"{'loss': '3.505', 'epoch': '0.09375'}\n"
        + b"\r 13%|#3        | 4/30 [00:00<00:00, 46.82it/s]\r"
    )
    _, update = read_whole(log)
    assert steps(update) == [1, 2, 4]


def test_without_a_progress_bar_dicts_are_counted():
    _, update = read_fixture("no_progress_bar.log")
    assert steps(update) == [1, 2, 3]
    assert update.finished
    assert "max_steps" not in update.facts


def test_block_buffered_stdout_dicts_are_counted_not_tied_to_a_later_bar():
    _, update = read_fixture("buffered_stdout.log")
    assert steps(update) == [1, 2, 3, 4]
    assert update.facts["max_steps"] == 6


def test_a_live_dict_is_read_when_its_bar_redraw_arrives_without_a_terminator():
    reader = ConsoleLogReader()
    first = reader.feed(
        b"\r  0%|          | 0/400 [00:00<?, ?it/s]" + CLEAR + b"{'loss': '0.5', 'epoch': '0.01'}\n"
        + b"\r  0%|          | 1/400 [00:11<1:18:01, 11.8s/it]"
        + b"\r  0%|          | 1/400 [00:11<1:18:01, 11.8s/it]"
    )
    assert steps(first) == [1]
    held = reader.feed(CLEAR + b"{'loss': '0.4', 'epoch': '0.02'}\n")
    assert held.records == []
    redraw = reader.feed(b"\r  0%|          | 2/400 [00:23<1:17:50, 11.8s/it]")
    assert steps(redraw) == [2]


def test_a_torn_line_waits_for_its_newline():
    reader = ConsoleLogReader()
    assert reader.feed(b"{'loss': 0.5, 'grad_norm': 1.2").records == []
    assert reader.feed(b"5, 'epoch': 0.1}").records == []
    update = reader.feed(b"\n")
    assert [r.values for r in update.records] == [{"loss": 0.5, "grad_norm": 1.25, "epoch": 0.1}]


def test_max_steps_comes_from_the_training_bar_only():
    _, update = read_fixture("transformers4_eval.log")
    assert update.facts["max_steps"] == 40  # not Map's 4000, the shards' 2 or the eval loop's 4


def test_an_evaluation_bar_before_training_does_not_pin_max_steps():
    log = (
        b"\r  0%|          | 0/8 [00:00<?, ?it/s]\r100%|##########| 8/8 [00:01<00:00, 6.1it/s]\n"
        + b"\r  0%|          | 0/100 [00:00<?, ?it/s]"
        + CLEAR + b"{'loss': '0.69', 'epoch': '0.01'}\n"
        + b"\r  1%|1         | 1/100 [00:03<05:00, 3.0s/it]"
        + b"\r  2%|2         | 2/100 [00:06<04:57, 3.0s/it]\r"
    )
    reader = ConsoleLogReader()
    merged = Update()
    merged.merge(reader.feed(log))
    assert merged.facts["max_steps"] == 100
    assert steps(merged) == [1]


# --- values -------------------------------------------------------------------------------------


def test_transformers4_floats_nan_inf_eval_and_numpy_scalars():
    _, update = read_fixture("transformers4_eval.log")
    assert [(r.step, r.phase) for r in update.records] == [
        (10, "train"), (20, "train"), (20, "eval"), (30, "train"), (40, "train"), (40, "eval"),
    ]
    at_30 = update.records[3].values
    assert math.isnan(at_30["grad_norm"])
    assert at_30["rewards/margins"] == -math.inf
    assert "lr_scheduler_type" not in at_30
    evaluation = update.records[2].values
    assert evaluation == {
        "loss": 0.6401,
        "runtime": 1.052,
        "samples_per_second": 30.42,
        "steps_per_second": 3.802,
        "rewards/accuracies": 0.6875,
        "rewards/margins": 0.1342,
        "epoch": 0.1,
    }
    assert update.facts["summary"]["train_loss"] == 0.6512
    assert update.finished


def test_a_printed_config_dict_is_not_a_step():
    _, update = read_whole(b"{'model_name': 'Qwen/Qwen2-0.5B', 'beta': 0.1, 'max_steps': 500}\n")
    assert update.records == []
    assert update.notes == []


def test_values_are_numbers_whichever_way_they_were_printed():
    _, update = read_whole(
        b"{'loss': '0.5', 'num_tokens': '336', 'flag': 'true', 'epoch': '1'}\n"
        b"{'loss': nan, 'num_tokens': 672, 'flag': True, 'epoch': 2}\n"
        b"{'loss': 0.25, 'num_tokens': '1.008e+03', 'ids': [1, 2], 'epoch': 3}\n"
    )
    assert [r.values["num_tokens"] for r in update.records] == [336, 672, 1008]
    for record in update.records:
        assert all(type(v) in (int, float) for v in record.values.values())
        assert record.values.keys() == {"loss", "num_tokens", "epoch"}


def test_ansi_colour_and_rank_prefix_are_stripped():
    _, update = read_whole(
        b"\x1b[32m2025-11-20 03:12:40 INFO\x1b[0m {'loss': 0.5, 'epoch': 0.1}\n"
        b"[rank0]: {'loss': 0.4, 'epoch': 0.2}\n"
    )
    assert [r.values["loss"] for r in update.records] == [0.5, 0.4]


# --- crashes ------------------------------------------------------------------------------------

SIGNATURES = [
    (
        "oom_torch_outofmemoryerror.log",
        "oom",
        "CUDA out of memory",
        "torch.OutOfMemoryError: CUDA out of memory.",
    ),
    (
        "oom_torch_cuda_outofmemoryerror.log",
        "oom",
        "CUDA out of memory",
        "torch.cuda.OutOfMemoryError: CUDA out of memory.",
    ),
    ("oom_runtime_error.log", "oom", "CUDA out of memory", "RuntimeError: CUDA out of memory."),
    ("oom_cuda_error.log", "oom", "CUDA out of memory", "RuntimeError: CUDA error: out of memory"),
    ("oom_hip.log", "oom", "HIP out of memory", "torch.OutOfMemoryError: HIP out of memory."),
    (
        "oom_cublas.log",
        "oom",
        "CUDA out of memory (cuBLAS allocation)",
        "RuntimeError: CUDA error: CUBLAS_",
    ),
    ("nccl_watchdog.log", "nccl", "NCCL watchdog timeout", None),
    ("nccl_error.log", "nccl", "NCCL error", "torch.distributed.DistBackendError: NCCL error in:"),
    ("nccl_pg_timeout.log", "nccl", "NCCL timeout", None),
    (
        "child_failed.log",
        "child_failed",
        "torchrun worker failed (rank 0, exit code -9 (SIGKILL))",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
    ),
    ("slurm_time_limit.log", "time_limit", "SLURM time limit", None),
    ("slurm_preempted.log", "preempted", "preempted by SLURM", None),
    ("slurm_cancelled.log", "sigterm", "SLURM job cancelled", None),
    ("killed.log", "killed", "killed (SIGKILL)", None),
    ("killed_slurm_oom.log", "killed", "killed by the OOM killer", None),
    ("segfault_faulthandler.log", "segfault", "segmentation fault", None),
    ("segfault_core_dumped.log", "segfault", "segmentation fault", None),
    ("keyboard_interrupt.log", "sigint", "interrupted (Ctrl-C)", "KeyboardInterrupt"),
    (
        "chained_exception.log",
        "exception",
        "RuntimeError",
        "RuntimeError: sample 1187 is malformed",
    ),
]


@pytest.mark.parametrize("fixture, reason, label, exception", SIGNATURES)
def test_crash_signature(fixture, reason, label, exception):
    reader, update = read_fixture(fixture)
    crash = update.crash
    assert crash is not None and crash == reader.crash
    assert crash.reason == reason and reason in CRASH_REASONS
    assert crash.label == label
    assert crash.last_step == 20
    assert crash.traceback
    if exception is None:
        assert crash.exception is None
    else:
        assert crash.exception.startswith(exception)
        assert crash.traceback.startswith("Traceback (most recent call last):")
        assert exception in crash.traceback


@pytest.mark.parametrize(
    "fixture, reason, label, exception",
    [
        (
            "torchrun_sigkill.log",
            "child_failed",
            "torchrun worker failed (rank 0, exit code -9 (SIGKILL))",
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
        ),
        (
            "torchrun_worker_exception.log",
            "exception",
            "RuntimeError",
            "RuntimeError: worker exploded",
        ),
        ("shell_killed.log", "killed", "killed (SIGKILL)", None),
        ("shell_segfault.log", "segfault", "segmentation fault", None),
    ],
)
def test_crash_output_of_real_processes(fixture, reason, label, exception):
    """Captured from torch 2.13's torchrun and bash on this machine (a worker killed or raising)."""
    _, update = read_fixture(fixture)
    crash = update.crash
    assert (crash.reason, crash.label, crash.exception) == (reason, label, exception)
    assert crash.last_step == 1


TWO_STEPS = b"{'loss': '0.69', 'epoch': '0.1'}\n{'loss': '0.68', 'epoch': '0.2'}\n"


@pytest.mark.parametrize(
    "line, reason, label",
    [
        (
            b"RuntimeError: [enforce fail at alloc_cpu.cpp:115] data. DefaultCPUAllocator: "
            b"not enough memory: you tried to allocate 68719476736 bytes.",
            "oom",
            "CPU out of memory",
        ),
        (
            b"torch.OutOfMemoryError: XPU out of memory. Tried to allocate 2.00 GiB.",
            "oom",
            "GPU out of memory",
        ),
        (
            b"torch.distributed.elastic.multiprocessing.api.SignalException: "
            b"Process 4242 got signal: 15",
            "sigterm",
            "received SIGTERM",
        ),
        (
            b"W1120 03:12:40.201000 2606 torch/distributed/elastic/agent/server/api.py:704] "
            b"Received Signals.SIGINT death signal, shutting down workers",
            "sigint",
            "received SIGINT",
        ),
        (b"srun: error: gpu-node-07: task 0: Killed", "killed", "killed (SIGKILL)"),
    ],
)
def test_crash_signature_on_a_line_of_its_own(line, reason, label):
    _, update = read_whole(TWO_STEPS + line + b"\n")
    assert (update.crash.reason, update.crash.label, update.crash.last_step) == (reason, label, 2)
    assert update.crash.traceback == line.decode()


def test_code_in_traceback_frames_is_not_a_signature():
    _, update = read_whole(
        b"Traceback (most recent call last):\n"
        b'  File "/home/user/train.py", line 12, in step\n'
        b"    except torch.cuda.OutOfMemoryError:  # NCCL error, Killed\n"
        b"ValueError: bad batch\n"
    )
    assert (update.crash.reason, update.crash.label) == ("exception", "ValueError")


def test_a_very_long_traceback_keeps_its_start_and_its_exception():
    frames = b"".join(b'  File "/x.py", line %d, in f\n    f()\n' % n for n in range(1000))
    _, update = read_whole(
        b"Traceback (most recent call last):\n" + frames + b"RecursionError: too deep\n"
    )
    text = update.crash.traceback
    assert text.startswith("Traceback (most recent call last):\n  File \"/x.py\", line 0, in f")
    assert "lines not kept" in text
    assert text.endswith("RecursionError: too deep")
    assert text.count("\n") < 500


def test_crlf_line_endings_read_like_lf():
    data = (FIXTURES / "oom_cuda_error.log").read_bytes()
    _, lf = read_whole(data)
    _, crlf = read_whole(data.replace(b"\n", b"\r\n"))
    assert crlf.crash == lf.crash
    assert comparable(crlf.records) == comparable(lf.records)


def test_an_oom_traceback_is_oom_with_its_frames_and_no_rank_prefix():
    _, update = read_fixture("oom_torch_outofmemoryerror.log")
    assert update.crash.traceback.count("\n  File ") == 7
    assert "[rank0]" not in update.crash.traceback
    assert steps(update) == [10, 20]


def test_the_nccl_timeout_beats_the_launcher_report_that_follows():
    _, update = read_fixture("nccl_watchdog.log")
    assert "Watchdog caught collective operation timeout" in update.crash.traceback


def test_a_cuda_error_keeps_its_message_lines():
    _, update = read_fixture("oom_cuda_error.log")
    assert update.crash.traceback.endswith(
        "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."
    )


def test_a_chained_traceback_keeps_the_whole_chain():
    _, update = read_fixture("chained_exception.log")
    text = update.crash.traceback
    assert "KeyError: 'prompt'\n\nDuring handling of the above exception" in text
    assert "another exception occurred:\n\nTraceback (most recent call last):" in text
    assert text.endswith("RuntimeError: sample 1187 is malformed")


def test_a_traceback_after_which_training_went_on_is_not_a_crash():
    data = (FIXTURES / "caught_exception.log").read_bytes()
    before_resuming = data.index(b"judge failed")
    reader, update = read_whole(data[:before_resuming])
    assert update.crash.reason == "exception"
    assert update.crash.exception == "TimeoutError: judge did not answer in 30 s"
    assert update.crash.last_step == 20
    later = reader.feed(data[before_resuming:])
    assert steps(later) == [30]
    assert later.crash is None and reader.crash is None
    _, whole = read_whole(data)
    assert whole.crash is None
    assert steps(whole) == [10, 20, 30]


def test_crash_evidence_is_sent_once():
    reader = ConsoleLogReader()
    assert reader.feed((FIXTURES / "killed.log").read_bytes()).crash.reason == "killed"
    assert reader.feed(b"some other line\n").crash is None
    assert reader.crash.reason == "killed"


# --- any split, junk ----------------------------------------------------------------------------

SPLIT_FIXTURES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.log"))
JUNK = b"\xff\xfe\x00\x00binary\x80\x81\r\x1b[31;1mred\x1b[0m\n{'loss': 'broken\n"


@settings(max_examples=examples(150), deadline=None)
@given(
    data=st.data(),
    fixture=st.sampled_from(SPLIT_FIXTURES),
    junk=st.sampled_from([b"", JUNK]),
)
def test_any_split_reads_the_same_as_the_whole(data, fixture, junk):
    log = (FIXTURES / fixture).read_bytes()
    at = data.draw(st.integers(0, len(log)), label="junk at")
    log = log[:at] + junk + log[at:]
    cuts = data.draw(st.lists(st.integers(0, len(log)), max_size=40), label="cuts")
    whole_reader, whole = read_whole(log)
    split_reader, split = read_in_pieces(log, cuts)
    assert comparable(split.records) == comparable(whole.records)
    assert repr(split.facts) == repr(whole.facts)  # repr: a NaN in the summary is not == itself
    assert split.finished == whole.finished
    assert split.notes == whole.notes
    assert split_reader.crash == whole_reader.crash


@settings(max_examples=examples(200), deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_arbitrary_bytes_never_raise(chunks):
    reader = ConsoleLogReader()
    for chunk in chunks:
        update = reader.feed(chunk)
        assert isinstance(update, Update)
        assert all(isinstance(note, str) for note in update.notes)


def test_invalid_utf8_and_nul_bytes_become_one_note_each_and_reading_goes_on():
    _, update = read_whole(
        b"\xff\xfe garbage \x80\n\x00\x00\x00\n\xc3\x28\n{'loss': '0.5', 'epoch': '0.1'}\n\x00\n"
    )
    assert steps(update) == [1]
    assert update.notes == [
        "line 1: invalid UTF-8 replaced; later ones not reported",
        "line 2: binary data (NUL bytes); later ones not reported",
    ]


def test_a_50_mb_line_is_skipped_in_bounded_memory_with_one_note():
    reader = ConsoleLogReader()
    notes: list[str] = []
    chunk = b"x" * (1024 * 1024)
    tracemalloc.start()
    try:
        notes += reader.feed(b"{'loss': 0.1, 'epoch': 0.1}\n").notes
        for _ in range(50):
            notes += reader.feed(chunk).notes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    update = reader.feed(b"tail of the long line\n{'loss': 0.2, 'epoch': 0.2}\n")
    assert peak < 8 * MAX_SEGMENT_BYTES
    assert notes == ["line 2: longer than 1 MiB, skipped"]
    assert [r.values["loss"] for r in update.records] == [0.2]
    assert update.notes == []


def test_a_long_line_read_in_one_piece_is_skipped_too():
    long_line = b"\r" + b"y" * (MAX_SEGMENT_BYTES + 1) + b"\n"
    _, update = read_whole(long_line + b"{'loss': 0.2, 'epoch': 0.2}\n")
    assert update.notes == ["line 1: longer than 1 MiB, skipped"]
    assert steps(update) == [1]


def test_absurdly_long_numbers_do_not_raise():
    digits = b"9" * 5000
    torchrun = (FIXTURES / "torchrun_sigkill.log").read_bytes()
    reader, update = read_whole(
        b"\r  1%|          | " + digits + b"/" + digits + b" [00:00<00:00, 1.0it/s]\n"
        + b"{'loss': " + digits + b", 'epoch': 1}\n"
        + torchrun.replace(b"exitcode  : -9", b"exitcode  : -" + digits)
    )
    assert update.records[0].values["loss"] == math.inf
    assert "max_steps" not in update.facts
    assert reader.crash.label == "torchrun worker failed (rank 0)"


def test_a_cut_short_log_dict_is_a_note():
    _, update = read_whole(
        b"{'loss': '0.69', 'grad_norm': '0.3\n{'loss': '0.68', 'epoch': '0.2'}\n"
    )
    assert update.notes == ["line 1: log dict cut short, skipped"]
    assert steps(update) == [1]


def test_notes_are_capped():
    reader = ConsoleLogReader()
    notes: list[str] = []
    for _ in range(READER_NOTES + 10):
        notes += reader.feed(b"{'loss': '0.6\n").notes
    assert len(notes) == READER_NOTES + 1
    assert notes[-1] == "more notes about bad input not shown"
