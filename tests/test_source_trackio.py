"""Trackio projects: the database trackio 0.43 wrote for two real TRL runs, and read-only reading
of a database a writer holds open."""

import json
import math
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import TRACKER_RUNS

from rlhf_tui.core.sources.sqlite import DatabaseProblem, ReadOnlyDatabase
from rlhf_tui.core.sources.trackio import TrackioRun, list_runs, project_name

DB = TRACKER_RUNS / "trackio" / "huggingface.db"


def listing(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def runs_of(path: Path) -> dict[str, str]:
    database = ReadOnlyDatabase(str(path))
    with database.connect() as connection:
        return {run.name.split("/", 1)[1]: run.key for run in list_runs(connection, project_name(str(path)))}


def follow(path: Path, name: str) -> TrackioRun:
    return TrackioRun(ReadOnlyDatabase(str(path)), runs_of(path)[name])


def by_step(update, phase="train"):
    merged = {}
    for record in update.records:
        if record.phase == phase:
            merged.setdefault(record.step, {}).update(record.values)
    return merged


def test_each_trackio_run_is_listed_with_its_output_dir():
    database = ReadOnlyDatabase(str(DB))
    with database.connect() as connection:
        runs = list_runs(connection, "huggingface")
    assert sorted((run.name, run.output_dir) for run in runs) == [
        ("huggingface/dpo-crash", "out-dpo"),
        ("huggingface/grpo-ok", "out-grpo"),
    ]


def test_steps_are_the_trainers_global_step_and_profiling_rows_are_left_out():
    update = follow(DB, "grpo-ok").read()
    state = json.loads((TRACKER_RUNS / "out-grpo/checkpoint-4/trainer_state.json").read_text())

    assert update.notes == []
    steps = by_step(update)
    assert sorted(steps) == [1, 2, 3, 4]  # trackio's own step column runs 0..8 for these rows
    for entry in state["log_history"]:
        if "train_runtime" not in entry:
            assert steps[entry["step"]] == {k: v for k, v in entry.items() if k != "step"}
    assert not any(key.startswith("profiling/") for values in steps.values() for key in values)
    assert update.finished  # its step reached the config's max_steps
    facts = update.facts
    assert (facts["writer"], facts["project"], facts["run_name"], facts["max_steps"]) == ("trackio", "huggingface", "grpo-ok", 4)
    assert facts["config"]["output_dir"] == "out-grpo" and "_Created" not in facts["config"]


def test_a_crashed_run_stops_short_of_max_steps_and_is_not_finished():
    update = follow(DB, "dpo-crash").read()
    assert sorted(by_step(update)) == [1, 2] and sorted(by_step(update, "eval")) == [2]
    assert not update.finished and update.facts["max_steps"] == 6


def test_an_unchanged_database_is_not_read_again_and_new_rows_arrive_alone(tmp_path):
    path = tmp_path / "huggingface.db"
    path.write_bytes(DB.read_bytes())
    run = follow(path, "grpo-ok")
    run.read()
    assert run.read() is None
    with sqlite3.connect(path) as writer:
        key = runs_of(path)["grpo-ok"]
        rows = [(key, "2026-12-04T00:00:00+00:00", "grpo-ok", 9, json.dumps({"train/loss": "NaN", "train/kl": "Infinity", "train/global_step": 5}))]
        writer.executemany("INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) VALUES (?, ?, ?, ?, ?)", rows)
    update = run.read()
    (record,) = update.records
    assert record.step == 5 and math.isnan(record.values["loss"]) and record.values["kl"] == math.inf


def test_older_databases_without_run_ids_name_runs_by_their_name(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, timestamp TEXT, run_name TEXT, step INTEGER, metrics TEXT)")
        connection.execute("CREATE TABLE configs (id INTEGER PRIMARY KEY, run_name TEXT, config TEXT, created_at TEXT)")
        connection.execute("INSERT INTO configs (run_name, config, created_at) VALUES ('r1', '{\"max_steps\": 2}', '')")
        connection.execute("INSERT INTO metrics (timestamp, run_name, step, metrics) VALUES ('', 'r1', 0, '{\"loss\": 0.5}')")
    assert runs_of(path) == {"r1": "r1"}
    update = TrackioRun(ReadOnlyDatabase(str(path)), "r1").read()
    assert [(r.step, r.values) for r in update.records] == [(0, {"loss": 0.5})]


def test_another_database_is_not_taken_for_trackio(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE metrics (a, b)")
    with ReadOnlyDatabase(str(path)).connect() as connection:
        assert list_runs(connection, "other") is None


# --- read-only, whatever state the database is in -------------------------------------------


@pytest.fixture
def live_writer(tmp_path):
    """A copy of the fixture database held open by a writer in WAL mode, with rows not yet checkpointed."""
    path = tmp_path / "project" / "huggingface.db"
    path.parent.mkdir()
    path.write_bytes(DB.read_bytes())
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    key = runs_of(path)["grpo-ok"]
    for step in range(5, 9):
        writer.execute(
            "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) VALUES (?, '2026-12-04T00:00:00+00:00', 'grpo-ok', ?, ?)",
            (key, step, json.dumps({"train/loss": step / 10, "train/global_step": step})),
        )
    writer.commit()
    yield path, writer
    writer.close()


def test_a_database_held_open_by_a_writer_is_read_whole_and_nothing_beside_it_changes(live_writer):
    path, _ = live_writer
    assert {"huggingface.db-wal", "huggingface.db-shm"} <= set(os.listdir(path.parent))
    before = listing(path.parent)
    update = follow(path, "grpo-ok").read()
    assert sorted(by_step(update)) == [1, 2, 3, 4, 5, 6, 7, 8]  # rows only in the WAL included
    assert listing(path.parent) == before  # the same files, the same bytes, the -shm too


def test_a_closed_wal_database_is_read_without_creating_a_wal_or_shm(tmp_path):
    path = tmp_path / "huggingface.db"
    path.write_bytes(DB.read_bytes())
    before = listing(tmp_path)
    assert sorted(by_step(follow(path, "grpo-ok").read())) == [1, 2, 3, 4]
    assert listing(tmp_path) == before


def test_a_read_only_directory_is_read_and_stays_as_it_was(tmp_path):
    """As root the permissions are not enforced, but nothing may appear in the directory either way."""
    directory = tmp_path / "ro"
    directory.mkdir()
    (directory / "huggingface.db").write_bytes(DB.read_bytes())
    (directory / "huggingface.db").chmod(0o444)
    directory.chmod(0o555)
    try:
        before = listing(directory)
        assert sorted(by_step(follow(directory / "huggingface.db", "grpo-ok").read())) == [1, 2, 3, 4]
        assert listing(directory) == before
    finally:
        directory.chmod(0o755)


def test_a_file_that_is_not_sqlite_is_a_problem_not_an_exception(tmp_path):
    path = tmp_path / "huggingface.db"
    path.write_bytes(b"not a database at all\n" * 20)
    run = TrackioRun(ReadOnlyDatabase(str(path)), "x")
    update = run.read()
    assert update.notes == ["not an SQLite database"] and update.records == []
    assert run.read().notes == []  # said once
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    with pytest.raises(DatabaseProblem, match="not a readable SQLite database"):
        with ReadOnlyDatabase(str(path)).connect() as connection:
            connection.execute("SELECT * FROM sqlite_master").fetchall()
