import json
import os
import shutil
import time

from rlhf_tui.core import runlog
from rlhf_tui.core.history import HISTORY_MIN_BYTES
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.watch import ChangeFeed


STAMP = "2026-11-26T01:00:00.000000+00:00"


def ptt_line(step, loss, trainer=None):
    if trainer:
        return runlog.line(runlog.header(trainer, "run", STAMP))
    return runlog.line(runlog.step(step, STAMP, {"dpo_loss": loss}))


def append(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(text)


def by_name(monitor):
    return {run.name: run for run in monitor.visible_runs()}


def test_real_runs_merge_into_four_runs(real_runs):
    monitor = Monitor([str(real_runs)])
    monitor.scan()
    monitor.catch_up()
    runs = by_name(monitor)
    assert sorted(runs) == ["dpo_crash", "dpo_stuck", "grpo_small", "sft_small"]
    expected = {
        "dpo_crash": ("dpo", 11, 60, "crashed"),
        "dpo_stuck": ("dpo", 80, 80, "finished"),
        "grpo_small": ("grpo", 40, 40, "finished"),
        "sft_small": ("sft", 30, 30, "finished"),
    }
    for name, (trainer, step, max_steps, lifecycle) in expected.items():
        run = runs[name]
        assert (run.trainer, run.last_step, run.max_steps, run.lifecycle()) == (trainer, step, max_steps, lifecycle)
        assert len(run.role("loss")) == step, name  # four sources, each step once
    crash = runs["dpo_crash"].crash
    assert crash.exception.startswith("RuntimeError: deliberate crash")
    assert crash.last_step == 11 and "Traceback" in crash.traceback


def test_a_log_teed_beside_a_run_is_part_of_it_not_a_run_named_after_the_root(real_runs):
    """`python train.py | tee runs/dpo_crash.log` while runs/dpo_crash/ holds the run's files."""
    os.rename(real_runs / "dpo_crash" / "train.log", real_runs / "dpo_crash.log")
    monitor = Monitor([str(real_runs)])
    monitor.scan()
    monitor.catch_up()
    runs = by_name(monitor)
    assert sorted(runs) == ["dpo_crash", "dpo_stuck", "grpo_small", "sft_small"]
    run = runs["dpo_crash"]
    assert str(real_runs / "dpo_crash.log") in run.files
    steps = run.role("loss").steps.tolist()
    assert steps == list(range(1, 12))
    assert run.crash.traceback is not None


def test_appended_lines_new_runs_and_deleted_runs(tmp_path):
    log = tmp_path / "a" / "metrics.jsonl"
    append(log, ptt_line(0, 0, "dpo") + ptt_line(1, 0.69))
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    monitor.catch_up()
    run = by_name(monitor)["a"]
    append(log, ptt_line(2, 0.6) + '{"step": 3, "timestamp": "2026-11-26T01:00:00.000000+00:00", "metr')
    assert monitor.poll([str(log)]) == {run}
    assert run.last_step == 2
    append(log, 'ics": {"dpo_loss": 0.5}}\n')
    monitor.poll([str(log)])
    assert run.role("loss").values.tolist() == [0.69, 0.6, 0.5]

    append(tmp_path / "b" / "train.log", "{'loss': '1.0', 'grad_norm': '0.5', 'learning_rate': '1e-05', 'epoch': '0.1'}\n")
    assert {r.name for r in monitor.scan()} == {"b"}
    shutil.rmtree(tmp_path / "a")
    monitor.scan()
    assert run.lifecycle() == "gone"
    assert by_name(monitor)["b"].lifecycle() != "gone"


def test_truncation_rereads_and_bad_input_is_noted_per_run(tmp_path):
    good = tmp_path / "good" / "metrics.jsonl"
    bad = tmp_path / "bad" / "metrics.jsonl"
    append(good, ptt_line(0, 0, "dpo") + "".join(ptt_line(s, 0.7) for s in range(1, 6)))
    append(bad, ptt_line(0, 0, "dpo") + "not json\n\x00\xff garbage\n" + ptt_line(1, 0.7))
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    monitor.catch_up()
    runs = by_name(monitor)
    assert runs["bad"].last_step == 1 and any("not valid JSON" in n for n in runs["bad"].notes)
    assert not runs["good"].notes
    good.write_text(ptt_line(0, 0, "dpo") + ptt_line(1, 0.9))
    monitor.poll()
    assert runs["good"].role("loss").values.tolist() == [0.9]
    assert any("truncated" in n for n in runs["good"].notes)


def test_file_replaced_by_directory_and_vanishing_files(tmp_path):
    log = tmp_path / "r" / "train.log"
    append(log, "{'loss': '1.0', 'epoch': '0.1'}\n")
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    monitor.catch_up()
    run = by_name(monitor)["r"]
    log.unlink()
    log.mkdir()
    monitor.poll()
    assert any("not a regular file" in n for n in run.notes)
    log.rmdir()
    monitor.poll()
    assert any("disappeared" in n for n in run.notes)


def test_budget_keeps_other_runs_updating(tmp_path):
    big = tmp_path / "big" / "metrics.jsonl"
    small = tmp_path / "small" / "metrics.jsonl"
    append(big, ptt_line(0, 0, "dpo") + "".join(ptt_line(s, 0.5) for s in range(1, 2501)))
    append(small, ptt_line(0, 0, "dpo") + ptt_line(1, 0.5))
    assert big.stat().st_size < HISTORY_MIN_BYTES  # read here, in budgets (a bigger one: test_history.py)
    monitor = Monitor([str(tmp_path)], file_budget=16 * 1024, pass_budget=32 * 1024)
    monitor.scan()
    monitor.poll()
    runs = by_name(monitor)
    assert runs["small"].last_step == 1
    assert runs["big"].last_step < 2500 and monitor.backlog
    monitor.catch_up()
    assert runs["big"].last_step == 2500 and len(runs["big"].role("loss")) == 2500


def test_nothing_is_written_into_run_directories(real_runs):
    def snapshot():
        return {
            p: (os.stat(p).st_size, os.stat(p).st_mtime_ns)
            for p in (str(x) for x in real_runs.rglob("*"))
        }

    before = snapshot()
    monitor = Monitor([str(real_runs)])
    monitor.scan()
    monitor.catch_up()
    assert snapshot() == before


def test_change_feed_reports_appends_quickly(tmp_path):
    log = tmp_path / "run" / "metrics.jsonl"
    append(log, ptt_line(0, 0, "dpo"))
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    monitor.catch_up()
    feed = ChangeFeed([str(tmp_path)])
    feed.start()
    try:
        time.sleep(0.3)
        append(log, ptt_line(1, 0.69))
        deadline = time.monotonic() + 5
        paths = set()
        while time.monotonic() < deadline and str(log) not in paths:
            time.sleep(0.02)
            paths |= feed.drain()
    finally:
        feed.stop()
    assert str(log) in paths
    monitor.poll(paths)
    assert by_name(monitor)["run"].last_step == 1


RLOO_KEYS = {"loss": 0.1, "reward": 0.5, "reward_std": 0.2, "frac_reward_zero_std": 0.0, "kl": 0.01}


def rloo_run(directory, header_trainer: str) -> None:
    (directory / "ptt").mkdir(parents=True)
    lines = [runlog.header(header_trainer, "run", STAMP)] + [runlog.step(step, STAMP, RLOO_KEYS) for step in (1, 2, 3)]
    (directory / "ptt" / runlog.METRICS_FILE).write_text("".join(map(runlog.line, lines)))


def trainer_shown(root) -> tuple[str, str]:
    monitor = Monitor([str(root)])
    monitor.scan()
    monitor.catch_up()
    (run,) = monitor.visible_runs()
    return run.trainer, run.trainer_label


def test_an_rloo_run_that_ptt_calls_unknown_is_rloo_by_its_model_card(tmp_path):
    rloo_run(tmp_path / "run", "unknown")
    assert trainer_shown(tmp_path) == ("grpo", "GRPO")  # its keys alone are GRPO's
    (tmp_path / "run" / "README.md").write_text("---\ntags:\n- generated_from_trainer\n- trl\n- rloo\n---\n")
    assert trainer_shown(tmp_path) == ("rloo", "RLOO")


def test_an_rloo_run_is_rloo_by_its_training_arguments(tmp_path):
    rloo_run(tmp_path / "run", "unknown")
    arguments = {"max_steps": 3, "num_generations": 4, "normalize_advantages": False, "beta": 0.05}
    (tmp_path / "run" / "ptt" / "run_metadata.json").write_text(json.dumps({"trainer_type": "unknown", "config": {"training_args": arguments}}))
    assert trainer_shown(tmp_path) == ("rloo", "RLOO")
