import json
import math

from conftest import REAL_RUNS

from rlhf_tui.core.records import rows
from rlhf_tui.core.sources.ptt import PttMetricsReader, read_critical_failure, read_metadata, read_postmortem


def feed_file(path):
    update = PttMetricsReader().feed(path.read_bytes())
    update.records = rows(update.records)  # a long regular stretch comes as a Block: written out here
    return update


def test_stuck_dpo_run_header_records_footer():
    update = feed_file(REAL_RUNS / "dpo_stuck/ptt/metrics.jsonl")
    assert update.facts["trainer"] == "dpo"
    assert update.facts["writer"] == "ptt"
    assert [r.step for r in update.records] == list(range(1, 81))
    assert update.finished
    assert update.records[-1].values["dpo_loss"] == 0.693147


def test_duplicate_last_step_row_is_the_summary_not_the_last_loss():
    update = feed_file(REAL_RUNS / "sft_small/ptt/metrics.jsonl")
    assert update.records[-1].step == 30
    assert update.records[-1].values == {"sft_loss": 2.586146}
    assert update.facts["summary"] == {"train_loss": 2.863618}


def test_crashed_run_has_no_footer():
    update = feed_file(REAL_RUNS / "dpo_crash/ptt/metrics.jsonl")
    assert not update.finished
    assert update.records[-1].step == 11


def test_nan_and_infinity_tokens_are_kept():
    lines = [
        {"type": "header", "trainer_type": "grpo"},
        {"step": 1, "timestamp": "2026-01-01T00:00:00+00:00", "metrics": {"grpo_loss": 0.1}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines)
    data += '{"step": 2, "timestamp": "2026-01-01T00:00:01+00:00", "metrics": {"grpo_loss": NaN, "kl": Infinity}}\n'
    update = PttMetricsReader().feed(data.encode())
    last = update.records[-1].values
    assert math.isnan(last["grpo_loss"]) and last["kl"] == math.inf
    assert update.records[-1].time - update.records[0].time == 1.0


def test_multi_gpu_suffixes_are_kept_as_raw_keys():
    line = b'{"step": 1, "timestamp": "2026-01-01T00:00:00Z", "metrics": {"dpo_loss_mean": 0.69, "dpo_loss_max": 0.7, "dpo_loss_min": 0.68}}\n'
    update = PttMetricsReader().feed(line)
    assert set(update.records[0].values) == {"dpo_loss_mean", "dpo_loss_max", "dpo_loss_min"}


def test_own_callback_header_eval_phase_and_summary_line():
    lines = [
        {"type": "header", "writer": "rlhf-top", "trainer_type": "dpo"},
        {"step": 1, "timestamp": "2026-01-01T00:00:00Z", "metrics": {"loss": 0.69}},
        {"step": 1, "timestamp": "2026-01-01T00:00:00Z", "phase": "eval", "metrics": {"eval_loss": 0.7}},
        {"type": "summary", "metrics": {"train_loss": 0.69, "train_runtime": 3.0}},
        {"type": "footer", "status": "completed", "total_steps": 1},
    ]
    update = PttMetricsReader().feed("".join(json.dumps(x) + "\n" for x in lines).encode())
    assert update.facts["writer"] == "rlhf-top"
    assert [(r.step, r.phase, r.values) for r in update.records] == [
        (1, "train", {"loss": 0.69}),
        (1, "eval", {"loss": 0.7}),
    ]
    assert update.facts["summary"]["train_runtime"] == 3.0
    assert update.finished


def test_bad_lines_become_notes_and_reading_goes_on():
    data = b'{"type": "header", "trainer_type": "dpo"}\n\xff\xfe garbage\n[1, 2]\n{"step": 3, "metrics": {"loss": 1}}\n'
    update = PttMetricsReader().feed(data)
    assert [r.step for r in update.records] == [3]
    assert len(update.notes) == 2 and "line 2" in update.notes[0]


def test_postmortem_gives_crash_with_exception_and_last_step():
    update = read_postmortem((REAL_RUNS / "dpo_crash/ptt/postmortem.json").read_bytes())
    crash = update.crash
    assert crash.reason == "exception"
    assert crash.exception.startswith("RuntimeError: deliberate crash")
    assert crash.last_step == 11
    assert crash.traceback.startswith("Traceback (most recent call last):")
    assert update.facts["pid"] == 23854


def test_postmortem_oom_is_classified():
    doc = {"exit_reason": "exception", "traceback": "Traceback...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "last_step": 5}
    assert read_postmortem(json.dumps(doc).encode()).crash.reason == "oom"


def test_broken_documents_are_notes():
    assert read_postmortem(b"").notes == ["postmortem.json: empty file"]
    assert read_postmortem(b"{").notes == ["postmortem.json: not valid JSON"]
    assert read_metadata(b"[]").notes == ["run_metadata.json: not a JSON object"]
    assert "critical failure" in read_critical_failure(b'{"message": "NaN loss"}').notes[0]


def test_metadata_facts():
    update = read_metadata((REAL_RUNS / "grpo_small/ptt/run_metadata.json").read_bytes())
    assert update.facts["trainer"] == "grpo"
    assert update.facts["max_steps"] == 40
    assert update.facts["beta"] == 0.04
    assert update.facts["config"]["per_device_train_batch_size"] == 8


def test_resume_after_footer_means_running_again(tmp_path):
    from rlhf_tui.core.monitor import Monitor

    log = tmp_path / "run" / "metrics.jsonl"
    log.parent.mkdir()
    lines = [
        {"type": "header", "writer": "rlhf-top", "trainer_type": "dpo"},
        {"step": 1, "timestamp": "2026-01-01T00:00:00Z", "metrics": {"loss": 0.69}},
        {"type": "footer", "status": "completed", "total_steps": 1},
    ]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    monitor.catch_up()
    (run,) = monitor.visible_runs()
    assert run.finished
    with open(log, "a") as handle:
        handle.write(json.dumps({"type": "resume", "from_step": 1}) + "\n")
    monitor.poll()
    assert not run.finished


def test_metadata_loss_type_list_from_trl_1x():
    update = read_metadata(json.dumps({"trainer_type": "dpo", "loss_type": ["sigmoid"]}).encode())
    assert update.facts["loss_type"] == "sigmoid"
