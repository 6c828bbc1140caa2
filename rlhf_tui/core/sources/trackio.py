"""Trackio (0.43) local projects: one SQLite database per project, `<TRACKIO_DIR>/<project>.db`.

`TRACKIO_DIR` defaults to `$HF_HOME/trackio` (`~/.cache/huggingface/trackio`); a project's runs are
found when a root contains its database. As trackio writes it (`trackio/sqlite_storage.py`, checked
against databases it wrote), in WAL mode:

- `metrics(id, run_id, timestamp, run_name, step, metrics)`: one row per `trackio.log` call, the
  metrics a JSON object with NaN and ±inf as the strings "NaN", "Infinity", "-Infinity". `step` is
  trackio's own counter unless the caller passed one; transformers' `TrackioCallback` logs
  `train/...` and `eval/...` keys with the trainer's step inside the row as `train/global_step`,
  and TRL's profiling timings come in rows of their own. Databases from older trackio have no
  `run_id` column: the run name is the run.
- `configs(run_id, run_name, config)`: the run's config as one JSON object, updated in place.

A run has no end marker (the end-of-run summary is not logged): it is finished when its step
reaches the config's `max_steps`. Parquet files appear only when a project is synced to a Space;
they hold the same rows and are not read.
"""

from __future__ import annotations

import math
import os
import sqlite3
from typing import Any

import msgspec

from rlhf_tui.core.config import facts_from_training_args, flat_config
from rlhf_tui.core.metrics import split_phase
from rlhf_tui.core.records import NoteBudget, Record, TrackerRun, Update
from rlhf_tui.core.sources.jsonl import parse_time
from rlhf_tui.core.sources.sqlite import DatabaseRun, ReadOnlyDatabase, tables

STEP_KEY = "train/global_step"
PROFILING = "profiling/"
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_INTERNAL_CONFIG = ("_Username", "_Created", "_Group")


def list_runs(connection: sqlite3.Connection, project: str) -> list[TrackerRun] | None:
    """The runs of a Trackio project database; None when the database is not Trackio's."""
    schema = tables(connection)
    metrics, configs = schema.get("metrics", set()), schema.get("configs", set())
    if not {"run_name", "step", "metrics", "timestamp"} <= metrics or not {"run_name", "config"} <= configs:
        return None
    key = "run_id" if "run_id" in metrics and "run_id" in configs else "run_name"
    runs: dict[str, TrackerRun] = {}
    for run_key, run_name, config in connection.execute(f"SELECT {key}, run_name, config FROM configs"):
        output_dir = _load(config).get("output_dir")
        output_dir = output_dir if isinstance(output_dir, str) else None
        runs[str(run_key)] = TrackerRun(str(run_key), f"{project}/{run_name}", output_dir)
    return list(runs.values())


class TrackioRun(DatabaseRun):
    """Follows one run of a Trackio database: new metric rows since the last read, and its config."""

    def __init__(self, database: ReadOnlyDatabase, run_key: str) -> None:
        super().__init__(database)
        self.run_key = run_key
        self._last_id = 0
        self._key_column: str | None = None
        self._config_text: Any = None
        self._max_steps: int | None = None
        self._last_step: int | None = None
        self._bad_rows = NoteBudget("further bad rows not reported")

    def read_rows(self, connection: sqlite3.Connection, update: Update, budget_rows: int) -> None:
        if self._key_column is None:
            columns = tables(connection).get("metrics", set())
            self._key_column = "run_id" if "run_id" in columns else "run_name"
        key = self._key_column
        config_row = connection.execute(f"SELECT run_name, config FROM configs WHERE {key} = ?", (self.run_key,)).fetchone()
        if config_row is not None and config_row[1] != self._config_text:
            self._config_text = config_row[1]
            self._read_config(str(config_row[0]), _load(config_row[1]), update)
        # `+run_id` keeps SQLite on the rowid range (new rows only) instead of the run's whole index
        rows = connection.execute(
            f"SELECT id, timestamp, step, metrics FROM metrics WHERE id > ? AND +{key} = ? ORDER BY id LIMIT ?",
            (self._last_id, self.run_key, budget_rows),
        ).fetchall()
        self.pending = len(rows) == budget_rows
        for row_id, timestamp, step, metrics in rows:
            self._last_id = row_id
            values = _load(metrics)
            if values or metrics in ("{}", b"{}"):
                self._row(timestamp, step, values, update)
            else:
                self._bad_row(row_id, update)
        if self._max_steps and self._last_step is not None and self._last_step >= self._max_steps:
            update.finished = True

    def _bad_row(self, row_id: int, update: Update) -> None:
        self._bad_rows.add(update.notes, f"metrics row {row_id}: not a JSON object, skipped")

    def _read_config(self, run_name: str, config: dict[str, Any], update: Update) -> None:
        update.facts["writer"] = "trackio"
        update.facts["run_name"] = run_name
        update.facts["project"] = project_name(self.database.path)
        update.facts["config"] = flat_config(config, skip=_INTERNAL_CONFIG)
        training = facts_from_training_args(config)
        update.facts.update(training)
        self._max_steps = training.get("max_steps")
        start = parse_time(config.get("_Created"))
        if start is not None:
            update.facts["start_time"] = start

    def _row(self, timestamp: Any, step: Any, metrics: dict[str, Any], update: Update) -> None:
        global_step = metrics.get(STEP_KEY)
        if type(global_step) is int:
            step = global_step
        if type(step) is not int:
            return
        when = parse_time(timestamp)
        train: dict[str, Any] = {}
        evals: dict[str, Any] = {}
        for name, value in metrics.items():
            if name == STEP_KEY:
                continue
            if type(value) is str:
                value = _SPECIAL.get(value)
            if type(value) not in (int, float):
                continue
            phase, name = split_phase(name)
            (train if phase == "train" else evals)[name] = value
        if train and not all(name.startswith(PROFILING) for name in train):
            update.records.append(Record(step, when, train))
            self._last_step = step if self._last_step is None else max(step, self._last_step)
        if evals:
            update.records.append(Record(step, when, evals, "eval"))


def project_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _load(text: Any) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text) if text is not None else None
    except (msgspec.DecodeError, RecursionError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}
