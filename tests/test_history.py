"""A big log's history read off the live path (core/history.py): in worker processes or in-process, with
its tail shown first or not, a run ends up exactly as when the monitor reads the whole file itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import rlhf_tui.core.monitor as monitor_module
from rlhf_tui.core import runlog
from rlhf_tui.core import history as history_module
from rlhf_tui.core.history import HISTORY_MIN_BYTES, TAIL_BYTES, Histories, Job
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.rules.status import LOADING
from rlhf_tui.session import open_session

STEPS = 6000


def line(step: int, loss: float | str = 0.5) -> str:
    stamp = f"2026-11-26T01:{(step // 60) % 60:02d}:{step % 60:02d}.{step % 1_000_000:06d}+00:00"
    metrics = {"dpo_loss": loss, "win_rate": 0.5 + step / 1e5, "reward_margin": step / 1e4, "kl": 0.01}
    return runlog.line(runlog.step(step, stamp, metrics))


def write_run(path, steps: range, footer: bool = True) -> str:
    log = path / "metrics.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"type": "header", "trainer_type": "dpo"}) + "\n"]
    lines += [line(s, 0.69 - s / 1e5) for s in steps]
    lines[len(lines) // 2] = line(len(lines) // 2, "NaN").replace('"NaN"', "NaN")  # a NaN token mid-history
    lines.insert(len(lines) - 2, '{"step": 5, "metrics": \n')  # a broken line near the end: a note with its number
    if footer:
        lines.append(json.dumps({"type": "footer", "status": "completed"}) + "\n")
    log.write_text("".join(lines))
    return str(log)


def state(run) -> dict:
    """Everything of a run that views, rules and reports read."""
    series = {key: (run.series(key).steps.tolist(), np.nan_to_num(run.series(key).values, nan=-1).tolist()) for key in run.keys()}
    return {
        "series": series,
        "times": run.times.values.tolist(),
        "last_step": run.last_step,
        "facts": run.facts,
        "finished": run.finished,
        "notes": list(run.notes),
        "primary": run.primary,
        "roles": run.roles,
        "loading": run.loading,
    }


@contextmanager
def scanned(root, workers: int = 0, preview: bool = True) -> Iterator[Monitor]:
    """A monitor over `root` that has found its runs (and, previewing, shown the big logs' tails)."""
    monitor = Monitor([str(root)], workers=workers)
    monitor.preview = preview
    try:
        monitor.scan()
        yield monitor
    finally:
        monitor.close()


def read_all(root, workers: int, preview: bool = False) -> dict:
    with scanned(root, workers, preview) as monitor:
        monitor.catch_up()
        return {run.name: state(run) for run in monitor.visible_runs()}


@pytest.fixture
def sweep(tmp_path):
    for index in range(3):
        write_run(tmp_path / f"run-{index}", range(1, STEPS + 1), footer=index != 1)
    write_run(tmp_path / "small", range(1, 50))
    return tmp_path


def test_history_in_workers_or_in_process_is_what_the_monitor_reads_itself(sweep, monkeypatch):
    assert os.path.getsize(sweep / "run-0" / "metrics.jsonl") > HISTORY_MIN_BYTES
    monkeypatch.setattr(history_module, "POOL_MIN_BYTES", 0)
    in_workers = read_all(sweep, workers=2, preview=True)
    in_process = read_all(sweep, workers=0)
    monkeypatch.setattr(monitor_module, "HISTORY_MIN_BYTES", 1 << 40)
    itself = read_all(sweep, workers=0)
    assert in_workers == itself and in_process == itself
    assert itself["run-0"]["last_step"] == STEPS and not itself["run-0"]["loading"]


def test_the_worker_processes_stop_once_every_history_is_read_and_start_again_for_a_new_one(sweep, monkeypatch):
    monkeypatch.setattr(history_module, "POOL_MIN_BYTES", 0)
    with scanned(sweep, workers=2, preview=False) as monitor:
        monitor.histories.take()
        assert monitor.histories._pool is not None
        monitor.catch_up()
        assert monitor.histories._pool is None and not monitor.histories
        write_run(sweep / "run-new", range(1, STEPS + 1))
        monitor.scan()
        assert monitor.histories and any(run.loading for run in monitor.runs.values())
        monitor.catch_up()
        new = next(run for run in monitor.runs.values() if run.name == "run-new")
        assert new.last_step == STEPS and not new.loading and monitor.histories._pool is None


def test_a_little_history_is_read_without_starting_worker_processes(sweep, monkeypatch):
    def no_pool(self):
        raise AssertionError("worker processes started for a few MB of history")

    monkeypatch.setattr(Histories, "_executor", no_pool)
    with scanned(sweep, workers=2, preview=False) as monitor:
        assert monitor.histories
        monitor.catch_up()
        assert all(run.last_step for run in monitor.runs.values()) and not monitor.histories


def test_worker_processes_that_cannot_start_leave_every_history_to_be_read_in_process(sweep, monkeypatch):
    def no_processes(self):
        raise ValueError("bad value(s) in fds_to_keep")  # what a fork server started under Textual says

    monkeypatch.setattr(history_module, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(Histories, "_executor", no_processes)
    assert read_all(sweep, workers=2, preview=True) == read_whole(sweep)


def test_the_tail_shows_first_and_the_history_replaces_it(sweep):
    with scanned(sweep) as monitor:
        runs = {run.name: run for run in monitor.runs.values()}
        run = runs["run-0"]
        assert run.loading and run.last_step == STEPS and run.trainer == "dpo"
        shown = len(run.role("loss"))
        assert 50 < shown < STEPS and run.role("loss").steps[0] > 1
        assert shown * len(line(STEPS)) <= TAIL_BYTES + len(line(STEPS))
        assert not run.notes
        assert runs["small"].last_step is None and not runs["small"].loading  # read the ordinary way, in poll
        monitor.catch_up()
        assert not run.loading and len(run.role("loss")) == STEPS and run.finished
        assert run.role("loss").nonfinite_count == 1


def test_lines_appended_while_the_history_loads_are_read_after_it_once(sweep):
    log = sweep / "run-1" / "metrics.jsonl"
    with scanned(sweep) as monitor:
        with open(log, "a") as handle:
            handle.writelines(line(s) for s in range(STEPS + 1, STEPS + 11))
        monitor.catch_up()
        run = next(run for run in monitor.runs.values() if run.name == "run-1")
        assert run.role("loss").steps.tolist() == list(range(1, STEPS + 11))


def test_a_log_replaced_while_its_history_loads_is_read_from_its_start(sweep):
    log = sweep / "run-2" / "metrics.jsonl"
    with scanned(sweep) as monitor:
        os.rename(log, sweep / "run-2" / "old.txt")
        write_run(sweep / "run-2", range(1, 101))
        monitor.catch_up()
        run = next(run for run in monitor.runs.values() if run.name == "run-2")
        assert run.role("loss").steps.tolist() == list(range(1, 101)) and not run.loading


def test_newest_first_and_the_run_on_screen_before_all():
    histories = Histories(workers=0)
    jobs = [Job(f"/runs/r{i}/metrics.jsonl", "metrics", 10, (0, i), mtime) for i, mtime in enumerate((5.0, 9.0, 1.0, 7.0))]
    for job in jobs:
        histories.add(job)
    assert histories._next() is jobs[1]
    histories.prefer(["/runs/r2"])
    assert histories._next() is jobs[2]
    assert histories._next() is jobs[3] and histories._next() is jobs[0] and histories._next() is None


def test_a_loading_run_has_no_findings_until_its_history_is_read(sweep):
    session = open_session([str(sweep)])
    session.monitor.histories.workers = 0
    session.monitor.preview = True
    try:
        session.refresh([], rescan=True)
        run = next(run for run in session.runs() if run.name == "run-0")
        assert run.loading and session.diagnosis(run).status.word == LOADING and not session.diagnosis(run).findings
        session.load()
        diagnosis = session.diagnosis(run)
        assert not run.loading and diagnosis.status.word != LOADING
        assert any(f.severity == "critical" for f in diagnosis.findings)  # the NaN in its history
    finally:
        session.close()


def read_whole(root) -> dict:
    """The runs as the monitor reads every file itself, in passes, with no history split off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(monitor_module, "HISTORY_MIN_BYTES", 1 << 40)
        return read_all(root, workers=0)


def test_a_log_replaced_while_loading_keeps_nothing_of_what_its_tail_said(sweep):
    with scanned(sweep) as monitor:
        run = next(run for run in monitor.runs.values() if run.name == "run-0")
        assert run.loading and run.finished  # the old log's footer, in its tail
        (sweep / "run-0" / "metrics.jsonl").unlink()
        write_run(sweep / "run-0", range(1, 4001), footer=False)
        monitor.catch_up()
        assert not run.finished and run.last_step == 4000
    assert read_all(sweep, workers=0, preview=True)["run-0"] == read_whole(sweep)["run-0"]


def test_a_second_log_of_the_same_source_found_while_loading_is_read_with_it(tmp_path, monkeypatch):
    held = [True]
    take = Histories.take
    monkeypatch.setattr(Histories, "take", lambda self, timeout=0.0: [] if held[0] else take(self, timeout))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s, "grad_norm": 0.3}) + "\n" for s in range(1, 8001)))
    with scanned(tmp_path) as monitor:
        run = next(iter(monitor.runs.values()))
        assert run.loading
        (run_dir / "eval.jsonl").write_text("".join(json.dumps({"step": s, "eval_acc": 0.5}) + "\n" for s in range(100, 8001, 100)))
        monitor.scan()
        monitor.poll()
        held[0] = False
        monitor.catch_up()
        assert sorted(run.keys()) == ["eval_acc", "grad_norm", "loss"] and not run.loading
    assert read_all(tmp_path, workers=0, preview=True) == read_whole(tmp_path)


def test_a_reader_that_fails_on_a_history_leaves_the_file_to_be_read_the_ordinary_way(sweep, monkeypatch):
    class Failing(history_module.PttMetricsReader):
        def feed(self, data):
            if len(data) > 100_000:
                raise ValueError("a reader bug")
            return super().feed(data)

    monkeypatch.setitem(history_module.READERS, "metrics", Failing)
    with scanned(sweep) as monitor:
        monitor.catch_up()
        run = next(run for run in monitor.runs.values() if run.name == "run-0")
        assert run.last_step == STEPS and not run.loading and not monitor.backlog


def test_a_header_longer_than_the_first_read_still_names_the_writer(tmp_path):
    header = {"type": "header", "trainer_type": "dpo", "writer": "rlhf-top", "config": {f"k{i}": "v" * 40 for i in range(100)}}
    log = tmp_path / "run" / "metrics.jsonl"
    log.parent.mkdir()
    log.write_text(json.dumps(header) + "\n" + "".join(line(s) for s in range(1, STEPS + 1)))
    assert log.stat().st_size > HISTORY_MIN_BYTES and len(json.dumps(header)) > history_module.HEAD_BYTES
    with scanned(tmp_path) as monitor:
        (run,) = monitor.runs.values()
        assert run.loading and list(run.data) == ["rlhf-top"]
    loaded = read_all(tmp_path, workers=0, preview=True)
    assert loaded == read_whole(tmp_path) and loaded["run"]["primary"] == "rlhf-top"


def test_a_run_resumed_and_then_completed_within_one_history_is_finished(tmp_path):
    log = tmp_path / "run" / "metrics.jsonl"
    log.parent.mkdir()
    lines = [json.dumps({"type": "header", "trainer_type": "dpo"}) + "\n"]
    lines += [line(s) for s in range(1, 3001)]
    lines.append(runlog.line(runlog.resume(3000, "2026-11-26T02:00:00+00:00")))
    lines += [line(s) for s in range(3001, STEPS + 1)]
    lines.append(json.dumps({"type": "footer", "status": "completed"}) + "\n")
    log.write_text("".join(lines))
    loaded = read_all(tmp_path, workers=0, preview=True)["run"]
    assert loaded["finished"] and loaded["last_step"] == STEPS
    assert loaded == read_whole(tmp_path)["run"]
