"""Hostile tracker files: torn and corrupt `.wandb` logs, a record far over any sane size, a
database locked by its writer, files that only look like databases, hostile text in console
records and configs. Each becomes notes on its own run (or, for a store that never opened, a note
of the session); the other runs read on, nothing raises, nothing is written beside the stores."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import wandb_records as wr
from conftest import TRACKER_RUNS

from rlhf_tui.core.monitor import Monitor

HOSTILE_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 1, in <module>\n'
    "    \x1b[31m[bold]x[/bold]\x1b[0m\x07\x1b]0;owned title\x07\n"
    "RuntimeError: \x1b[2J[blink]boom[/blink] **bold** `tick`\n"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def rows(steps: range) -> list[bytes]:
    return [wr.history({"train/loss": 0.7 - step / 100, "train/rewards/accuracies": 0.5, "train/global_step": step}) for step in steps]


def wandb_log(run_dir: Path, records: list[bytes], name: str) -> bytes:
    (run_dir / "files").mkdir(parents=True)
    payloads = [wr.record(1, wr.run(run_dir.name[-6:], "hostile", name=name))]
    payloads += [wr.record(number, record) for number, record in enumerate(records, start=2)]
    data = wr.frame(payloads)
    (run_dir / f"run-{run_dir.name[-6:]}.wandb").write_bytes(data)
    return data


def build(root: Path) -> None:
    wandb = root / "wandb"
    wandb_log(wandb / "offline-run-1-good01", rows(range(1, 31)), "good")
    data = bytearray(wandb_log(wandb / "offline-run-1-crcbad", rows(range(1, 31)), "bad-crc"))
    for pos, _, _ in wr.chunks(bytes(data))[5:25:4]:
        data[pos + 9] ^= 0x5A
    (wandb / "offline-run-1-crcbad" / "run-crcbad.wandb").write_bytes(bytes(data))
    torn = wandb_log(wandb / "offline-run-1-torn01", rows(range(1, 31)), "torn")
    (wandb / "offline-run-1-torn01" / "run-torn01.wandb").write_bytes(torn[: len(torn) - 37])
    (wandb / "offline-run-1-junk01" / "files").mkdir(parents=True)
    (wandb / "offline-run-1-junk01" / "run-junk01.wandb").write_bytes(os.urandom(70_000))
    wandb_log(wandb / "offline-run-1-trace1", [*rows(range(1, 4)), wr.output(HOSTILE_TRACEBACK, stdout=False), wr.exit_record(1)], "[red]hostile[/red]")
    nasty_config = wr.config({"output_dir": "../../../../etc", "deep": "[" * 5000, "lr": float("nan")})
    wandb_log(wandb / "offline-run-1-config", [nasty_config, *rows(range(1, 3))], "config")
    (root / "a").mkdir()
    (root / "a" / "mlflow.db").write_bytes(b"\x00not sqlite\xff" * 500)
    (root / "t").mkdir()
    (root / "t" / "project.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    (root / "t" / "project.lock").write_text("")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    build(root)
    return root


def monitor_of(root: Path) -> Monitor:
    monitor = Monitor([str(root)])
    monitor.scan()
    monitor.catch_up()
    return monitor


def test_every_hostile_wandb_log_is_notes_on_its_run_and_the_rest_is_read(hostile):
    monitor = monitor_of(hostile)
    runs = {run.name: run for run in monitor.visible_runs()}
    assert not [note for run in runs.values() for note in run.notes if "reader error" in note]
    assert runs["hostile/good"].last_step == 30 and not runs["hostile/good"].notes

    bad = runs["hostile/bad-crc"]
    assert 20 <= len(bad.role("loss")) < 30 and any("corrupt chunk" in note for note in bad.notes)

    torn = runs["hostile/torn"]  # its last record is still being written, as far as anyone can tell
    assert torn.last_step == 29 and not torn.notes

    junk = runs["junk01"]
    assert junk.last_step is None and any("no W&B file header" in note for note in junk.notes)
    assert len(junk.notes) <= 22

    crashed = runs["hostile/[red]hostile[/red]"]
    assert crashed.lifecycle() == "crashed" and "[blink]boom[/blink]" in crashed.crash.exception

    config = runs["hostile/config"]
    assert config.facts["config"]["lr"] == "nan" and len(config.facts["config"]["deep"]) == 500
    assert config.name == "hostile/config"  # "../../../../etc" is under no root: no joining there

    assert sorted(note.split(": ", 1)[1] for note in monitor.notes) == [
        "not a readable SQLite database (file is not a database)",
        "not an SQLite database",
    ]


def test_headless_output_of_hostile_tracker_runs_is_valid_and_clean(hostile):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    once = subprocess.run([sys.executable, "-m", "rlhf_tui", "--once", str(hostile)], capture_output=True, env=env, timeout=120)
    assert once.returncode == 1, once.stderr
    text = once.stdout.decode()
    assert "[red]hostile[/red]" in text and not CONTROL.search(text.replace("\n", ""))
    listed = subprocess.run([sys.executable, "-m", "rlhf_tui", "--json", str(hostile)], capture_output=True, env=env, timeout=120)
    document = json.loads(listed.stdout)
    assert len(document["runs"]) == 6 and len(document["notes"]) == 2


def test_a_wandb_record_far_over_the_limit_is_skipped_without_holding_it(tmp_path):
    huge = 40 * 2**20
    wandb_log(tmp_path / "wandb" / "offline-run-1-huge01", [*rows(range(1, 3)), wr.history({"train/blob": "x" * huge, "train/global_step": 3}), *rows(range(4, 6))], "huge")
    monitor = Monitor([str(tmp_path)])
    monitor.scan()
    tracemalloc.start()
    try:
        monitor.catch_up()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (run,) = monitor.visible_runs()
    assert run.data["wandb"].series["loss"].steps.tolist() == [1, 2, 4, 5]
    assert any("over 16 MiB skipped" in note for note in run.notes)
    assert peak < huge * 0.75, f"peak {peak / 2**20:.0f} MiB"


def test_stores_locked_by_their_writers_are_read_when_they_can_be_and_never_written(tmp_path):
    launch = tmp_path / "launch"
    shutil.copytree(TRACKER_RUNS, launch)
    (launch / "out-dpo").mkdir()
    trackio = sqlite3.connect(launch / "trackio" / "huggingface.db", isolation_level=None)
    trackio.execute("PRAGMA journal_mode = WAL")
    trackio.execute("BEGIN EXCLUSIVE")
    trackio.execute("DELETE FROM metrics")  # not committed: no reader may see it
    mlflow = sqlite3.connect(launch / "mlflow.db", isolation_level=None)
    mlflow.execute("BEGIN EXCLUSIVE")
    mlflow.execute("UPDATE runs SET name = 'renamed'")
    listing = sorted(os.listdir(launch)) + sorted(os.listdir(launch / "trackio"))
    try:
        monitor = monitor_of(launch)
        runs = {run.name: run for run in monitor.visible_runs()}
        grpo = runs["out-grpo"]
        assert grpo.data["trackio"].last_step == 4 and "mlflow" not in grpo.data
        assert not grpo.notes and not monitor.notes
        assert sorted(os.listdir(launch)) + sorted(os.listdir(launch / "trackio")) == listing
    finally:
        trackio.execute("ROLLBACK")
        mlflow.execute("ROLLBACK")
    monitor.scan()  # the MLflow store could not be listed while locked: the next scan finds its runs
    monitor.catch_up()
    assert grpo.data["mlflow"].last_step == 4
    trackio.close()
    mlflow.close()
