"""MLflow (3.17) local tracking stores: the SQLite backend and the file store `mlruns/`.

MLflow 3 writes `mlflow.db` in the working directory by default; the file store needs
`MLFLOW_ALLOW_FILE_STORE=true` now but older runs are kept in it. As MLflow writes them (checked
against stores it wrote through transformers' `MLFlowCallback` and TRL's profiling context):

- SQLite (rollback journal): `runs(run_uuid, name, status, lifecycle_stage, experiment_id, ...)`,
  `experiments(experiment_id, name)`, `metrics(key, value, timestamp, run_uuid, step, is_nan)` one
  row per key and step (NaN stored as 0 with `is_nan`, ±inf as ±1.797e308), `params(key, value,
  run_uuid)` as text.
- file store: `mlruns/<experiment id>/<run id>/` with `meta.yaml` (`run_name`, `status` as a
  number), `params/<key>`, `tags/<key>` and `metrics/<key>` files of `timestamp value step` lines;
  keys with "/" are nested folders. The experiment's name is in `mlruns/<id>/meta.yaml`.

Metric keys are the trainer's own (`loss`, `eval_loss`, `rewards/chosen`); TRL's profiling timings
(`profiling/...`) are left out and transformers' end-of-run keys become the summary. Status
FAILED or KILLED is a crash. MLflow closes a run as FINISHED when the process exits, even after an
exception, so a FINISHED run that stopped short of its `max_steps` without the end-of-run summary is
reported as ended early.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import sys
from typing import Any

import yaml

from rlhf_tui.core.config import facts_from_training_args, flat_config
from rlhf_tui.core.metrics import SUMMARY_KEYS
from rlhf_tui.core.records import Crash, Record, TrackerRun, Update
from rlhf_tui.core.sources.lines import LineBuffer
from rlhf_tui.core.sources.sqlite import DatabaseRun, ReadOnlyDatabase, file_signature, tables

PROFILING = "profiling/"
_FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_DOUBLE_MAX = sys.float_info.max
_TEXT_CONSTANTS = {"True": True, "False": False}
_WORD_LIST = re.compile(r"\[(?:'[\w.-]*'(?:, )?)*\]")  # str(["sigmoid"]): DPOConfig.loss_type
_WORD = re.compile(r"'([\w.-]*)'")
MAX_META_BYTES = 1024 * 1024


def list_runs(connection: sqlite3.Connection) -> list[TrackerRun] | None:
    """The live runs of an MLflow SQLite store; None when the database is not MLflow's."""
    schema = tables(connection)
    if not {"run_uuid", "name", "status", "experiment_id"} <= schema.get("runs", set()):
        return None
    if not {"key", "value", "step", "run_uuid"} <= schema.get("metrics", set()) or "experiments" not in schema:
        return None
    output_dirs = dict(connection.execute("SELECT run_uuid, value FROM params WHERE key = 'output_dir'"))
    rows = connection.execute(
        "SELECT r.run_uuid, r.name, e.name FROM runs r LEFT JOIN experiments e ON r.experiment_id = e.experiment_id"
        " WHERE r.lifecycle_stage IS NULL OR r.lifecycle_stage != 'deleted'"
    )
    return [TrackerRun(str(run), _name(experiment, name, run), output_dirs.get(run)) for run, name, experiment in rows]


def _name(experiment: Any, name: Any, run: str) -> str:
    return f"{experiment or 'mlflow'}/{name or run}"


class _Verdict:
    """How an MLflow run ended, from its status, its steps and its summary."""

    def __init__(self) -> None:
        self.max_steps: int | None = None
        self.last_step: int | None = None
        self.summary: dict[str, float] = {}

    def add(self, records: list[Record]) -> None:
        for record in records:
            if record.phase == "train":
                self.last_step = record.step if self.last_step is None else max(self.last_step, record.step)

    def judge(self, status: str | None, name: str, update: Update) -> Crash | None:
        if status == "FAILED":
            return Crash("exception", "MLflow run FAILED", last_step=self.last_step, source=name)
        if status == "KILLED":
            return Crash("killed", "MLflow run KILLED", last_step=self.last_step, source=name)
        if status != "FINISHED":
            return None
        short = self.max_steps is not None and (self.last_step or 0) < self.max_steps
        if short and "train_runtime" not in self.summary:
            label = f"ended at step {self.last_step or 0} of {self.max_steps} (MLflow status FINISHED)"
            return Crash("exception", label, last_step=self.last_step, source=name)
        update.finished = True
        return None


class _RunState:
    """What both stores share: params to config, metric values to records, the verdict."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.crash: Crash | None = None
        self._verdict = _Verdict()
        self._params: dict[str, Any] | None = None

    def params(self, params: dict[str, str], update: Update) -> None:
        parsed = {key: _param_value(value) for key, value in params.items()}
        if parsed == self._params:
            return
        self._params = parsed
        update.facts["config"] = flat_config(parsed)
        training = facts_from_training_args(parsed)
        update.facts.update(training)
        self._verdict.max_steps = training.get("max_steps")

    def records(self, rows: list[tuple[str, float, float | None, int]], update: Update) -> None:
        """(key, value, time, step) rows in the order logged, grouped into records by step."""
        current: dict[tuple[int, str], Record] = {}
        made: list[Record] = []
        for key, value, when, step in rows:
            if key.startswith(PROFILING):
                continue
            if key in SUMMARY_KEYS:
                self._verdict.summary[key] = value
                update.facts["summary"] = dict(self._verdict.summary)
                continue
            phase = "eval" if key.startswith("eval_") else "train"
            if phase == "eval":
                key = key[5:]
            record = current.get((step, phase))
            if record is None or key in record.values:
                record = current[(step, phase)] = Record(step, when, {}, phase)
                made.append(record)
            record.values[key] = value
        update.records.extend(made)
        self._verdict.add(made)

    def status(self, status: str | None, update: Update) -> None:
        crash = self._verdict.judge(status, self.name, update)
        if crash != self.crash:
            self.crash = crash
            update.crash = crash


def _param_value(text: str) -> Any:
    """MLflow keeps params as str(value): numbers, booleans and lists of words are turned back."""
    if text in _TEXT_CONSTANTS:
        return _TEXT_CONSTANTS[text]
    if _WORD_LIST.fullmatch(text):
        return _WORD.findall(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _metric_value(value: Any, is_nan: Any) -> float | None:
    if is_nan:
        return math.nan
    if type(value) not in (int, float):
        return None
    if value >= _DOUBLE_MAX:  # MLflow's SQL store keeps ±inf as the largest double
        return math.inf
    if value <= -_DOUBLE_MAX:
        return -math.inf
    return float(value)


class MlflowRun(DatabaseRun):
    """Follows one run of an MLflow SQLite store: new metric rows, params, status."""

    def __init__(self, database: ReadOnlyDatabase, run_uuid: str) -> None:
        super().__init__(database)
        self.run_uuid = run_uuid
        self._state = _RunState(os.path.basename(database.path))
        self._last_rowid = 0

    @property
    def crash(self) -> Crash | None:
        return self._state.crash

    def read_rows(self, connection: sqlite3.Connection, update: Update, budget_rows: int) -> None:
        state = self._state
        run = connection.execute(
            "SELECT r.name, r.status, r.start_time, e.name FROM runs r"
            " LEFT JOIN experiments e ON r.experiment_id = e.experiment_id WHERE r.run_uuid = ?",
            (self.run_uuid,),
        ).fetchone()
        if run is None:
            update.notes.append(f"run {self.run_uuid} is no longer in the database")
            return
        name, status, start_time, experiment = run
        update.facts.update(writer="mlflow", run_name=name or self.run_uuid, project=experiment or "mlflow")
        if type(start_time) is int:
            update.facts["start_time"] = start_time / 1000
        params = connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (self.run_uuid,))
        state.params({str(key): str(value) for key, value in params}, update)
        # `+run_uuid` keeps SQLite on the rowid range (new rows only) instead of the run's whole index
        rows = connection.execute(
            "SELECT rowid, key, value, timestamp, step, is_nan FROM metrics"
            " WHERE rowid > ? AND +run_uuid = ? ORDER BY rowid LIMIT ?",
            (self._last_rowid, self.run_uuid, budget_rows),
        ).fetchall()
        self.pending = len(rows) == budget_rows
        values = []
        for rowid, key, value, timestamp, step, is_nan in rows:
            self._last_rowid = rowid
            number = _metric_value(value, is_nan)
            if number is not None and type(step) is int and isinstance(key, str):
                values.append((key, number, timestamp / 1000 if type(timestamp) is int else None, step))
        state.records(values, update)
        if not self.pending:
            state.status(status, update)


class MlflowFileRun:
    """Follows one run of an MLflow file store (`mlruns/<experiment>/<run>/`)."""

    pending = False  # a folder of small files is read whole

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.mtime: float | None = None
        self._state = _RunState("meta.yaml")
        self._offsets: dict[str, int] = {}
        self._lines: dict[str, LineBuffer] = {}
        self._signature: Any = None
        self._params_signature: Any = None
        self._problem: str | None = None

    @property
    def crash(self) -> Crash | None:
        return self._state.crash

    def read(self, budget_rows: int = 0) -> Update | None:
        meta_path = os.path.join(self.run_dir, "meta.yaml")
        params = _signatures(os.path.join(self.run_dir, "params"))
        metrics = _signatures(os.path.join(self.run_dir, "metrics"))
        signature = (file_signature(meta_path), params, metrics)
        if signature == self._signature:
            return None
        self._signature = signature
        self.mtime = max((st[2] / 1e9 for _, st in [(meta_path, signature[0]), *params, *metrics] if st), default=None)
        update = Update()
        meta, problem = _load_yaml(meta_path)
        if problem != self._problem:
            self._problem = problem
            if problem:
                update.notes.append(problem)
        if meta is None:
            return update
        update.facts.update(writer="mlflow", run_name=str(meta.get("run_name") or os.path.basename(self.run_dir)))
        experiment, _ = _load_yaml(os.path.join(os.path.dirname(self.run_dir), "meta.yaml"))
        if experiment and experiment.get("name"):
            update.facts["project"] = str(experiment["name"])
        if type(meta.get("start_time")) is int:
            update.facts["start_time"] = meta["start_time"] / 1000
        if params != self._params_signature:
            self._params_signature = params
            params_dir = os.path.join(self.run_dir, "params")
            texts = {_key(path, params_dir): _read_text(path) for path, _ in params}
            self._state.params({key: text for key, text in texts.items() if text is not None}, update)
        self._state.records(self._new_metric_lines([path for path, _ in metrics]), update)
        status = meta.get("status")
        self._state.status(_FILE_STATUS.get(status) if type(status) is int else None, update)
        return update

    def _new_metric_lines(self, files: list[str]) -> list[tuple[str, float, float | None, int]]:
        metrics_dir = os.path.join(self.run_dir, "metrics")
        rows: list[tuple[str, float, float | None, int]] = []
        for path in files:
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            self._offsets[path] = offset + len(data)
            key = _key(path, metrics_dir)
            for line in self._lines.setdefault(path, LineBuffer()).feed(data):
                parts = line.split()
                if len(parts) != 3:
                    continue
                try:
                    timestamp, value, step = int(parts[0]), float(parts[1]), int(parts[2])
                except ValueError:
                    continue
                rows.append((key, value, timestamp / 1000, step))
        rows.sort(key=lambda row: row[3])  # files are read one after the other; steps interleave
        return rows


_file_store_runs: dict[str, tuple[Any, TrackerRun | None]] = {}
_FILE_STORE_RUNS_KEPT = 4096


def list_file_store_run(run_dir: str) -> TrackerRun | None:
    """The run of an `mlruns/<experiment>/<run>/` directory, for discovery; None if it is not one.
    Cached until its `meta.yaml`, its experiment's or its `output_dir` param changes."""
    paths = [os.path.join(run_dir, "meta.yaml"), os.path.join(os.path.dirname(run_dir), "meta.yaml"), os.path.join(run_dir, "params", "output_dir")]
    signature = [file_signature(path) for path in paths]
    cached = _file_store_runs.get(run_dir)
    if cached is not None and cached[0] == signature:
        return cached[1]
    meta, _ = _load_yaml(paths[0])
    run = None
    if meta is not None and meta.get("lifecycle_stage") != "deleted":
        experiment = _load_yaml(paths[1])[0] or {}
        run_id = str(meta.get("run_id") or os.path.basename(run_dir))
        run = TrackerRun(run_id, _name(experiment.get("name"), meta.get("run_name"), run_id), _read_text(paths[2]))
    if len(_file_store_runs) >= _FILE_STORE_RUNS_KEPT:
        _file_store_runs.clear()
    _file_store_runs[run_dir] = (signature, run)
    return run


def _signatures(directory: str) -> list[tuple[str, tuple[int, int, int] | None]]:
    found: list[str] = []
    for parent, _, names in os.walk(directory):
        found.extend(os.path.join(parent, name) for name in names)
    return [(path, file_signature(path)) for path in sorted(found)]


def _key(path: str, directory: str) -> str:
    return os.path.relpath(path, directory).replace(os.sep, "/")




def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_META_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def _load_yaml(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(mapping, problem): a missing file is no problem, it may not be written yet."""
    text = _read_text(path)
    if text is None:
        return None, None
    try:
        loaded = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError):
        loaded = None
    if not isinstance(loaded, dict):
        return None, f"{os.path.basename(path)}: not a YAML mapping"
    return loaded, None
