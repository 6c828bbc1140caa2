"""MLflow stores: the SQLite database and the file store MLflow 3.17 wrote (tests/fixtures/trackers)."""

import json
import math
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import TRACKER_RUNS

from rlhf_tui.core.sources.mlflow import MlflowFileRun, MlflowRun, list_file_store_run, list_runs
from rlhf_tui.core.sources.sqlite import ReadOnlyDatabase

DB = TRACKER_RUNS / "mlflow.db"
FILE_STORE = TRACKER_RUNS / "mlruns"


def sql_runs(path: Path) -> dict[str, str]:
    with ReadOnlyDatabase(str(path)).connect() as connection:
        return {run.name: run.key for run in list_runs(connection)}


def by_step(update, phase="train"):
    merged = {}
    for record in update.records:
        if record.phase == phase:
            merged.setdefault(record.step, {}).update(record.values)
    return merged


def file_run(name: str) -> Path:
    for meta in FILE_STORE.glob("*/*/meta.yaml"):
        if f"run_name: {name}\n" in meta.read_text():
            return meta.parent
    raise LookupError(name)


def test_the_sqlite_store_lists_its_runs_with_experiment_and_output_dir():
    with ReadOnlyDatabase(str(DB)).connect() as connection:
        runs = list_runs(connection)
    assert sorted((run.name, run.output_dir) for run in runs) == [("Default/dpo-crash", "out-dpo"), ("Default/grpo-ok", "out-grpo")]


def test_a_finished_run_gives_its_metrics_params_and_summary():
    run = MlflowRun(ReadOnlyDatabase(str(DB)), sql_runs(DB)["Default/grpo-ok"])
    update = run.read()
    state = json.loads((TRACKER_RUNS / "out-grpo/checkpoint-4/trainer_state.json").read_text())

    steps = by_step(update)
    for entry in state["log_history"]:
        if "train_runtime" not in entry:
            assert steps[entry["step"]] == {k: v for k, v in entry.items() if k != "step"}
    assert not any(key.startswith("profiling/") for values in steps.values() for key in values)
    assert update.finished and run.crash is None
    assert set(update.facts["summary"]) == {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
    facts = update.facts
    assert (facts["writer"], facts["project"], facts["run_name"], facts["max_steps"]) == ("mlflow", "Default", "grpo-ok", 4)
    assert facts["config"]["num_generations"] == 4 and facts["config"]["output_dir"] == "out-grpo"
    assert run.read() is None


def test_a_run_mlflow_closed_as_finished_after_an_exception_is_reported_as_ended_early():
    run = MlflowRun(ReadOnlyDatabase(str(DB)), sql_runs(DB)["Default/dpo-crash"])
    update = run.read()
    assert sorted(by_step(update)) == [1, 2] and "rewards/accuracies" in by_step(update, "eval")[2]
    assert not update.finished
    assert run.crash.label == "ended at step 2 of 6 (MLflow status FINISHED)"
    assert update.facts["loss_type"] == "sigmoid"  # the param is the text "['sigmoid']"


def test_status_failed_and_killed_are_crashes_and_nan_and_inf_come_back(tmp_path):
    path = tmp_path / "mlflow.db"
    shutil.copy(DB, path)
    key = sql_runs(path)["Default/grpo-ok"]
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE runs SET status = 'RUNNING' WHERE run_uuid = ?", (key,))
    run = MlflowRun(ReadOnlyDatabase(str(path)), key)
    assert not run.read().finished and run.crash is None
    with sqlite3.connect(path) as writer:
        writer.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, 1796343000000, ?, 5, ?)",
            [("loss", 0.0, key, 1), ("kl", 1.7976931348623157e308, key, 0), ("grad_norm", -1.7976931348623157e308, key, 0)],
        )
        writer.execute("UPDATE runs SET status = 'KILLED' WHERE run_uuid = ?", (key,))
    update = run.read()
    values = by_step(update)[5]
    assert math.isnan(values["loss"]) and values["kl"] == math.inf and values["grad_norm"] == -math.inf
    assert run.crash.reason == "killed" and update.crash == run.crash
    with sqlite3.connect(path) as writer:
        writer.execute("UPDATE runs SET status = 'FAILED' WHERE run_uuid = ?", (key,))
    run.read()
    assert run.crash.label == "MLflow run FAILED"


def test_a_writer_in_the_middle_of_a_commit_is_waited_for_without_a_note(tmp_path):
    path = tmp_path / "mlflow.db"
    shutil.copy(DB, path)
    run = MlflowRun(ReadOnlyDatabase(str(path)), sql_runs(path)["Default/grpo-ok"])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE runs SET name = name")
    try:
        update = run.read()
        assert update.records == [] and update.notes == []
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert sorted(by_step(run.read())) == [1, 2, 3, 4]
    assert os.listdir(tmp_path) == ["mlflow.db"]


def test_the_file_store_gives_runs_with_nan_inf_eval_and_params():
    run_dir = file_run("lr-1e-5")
    assert list_file_store_run(str(run_dir)).name == "sweep/lr-1e-5"
    source = MlflowFileRun(str(run_dir))
    update = source.read()
    steps = by_step(update)
    assert sorted(steps) == [1, 2, 3]
    assert steps[1] == {"loss": 0.6931, "rewards/accuracies": 0.6, "rewards/chosen": 0.01}
    assert math.isnan(steps[3]["loss"]) and steps[3]["kl"] == math.inf
    assert by_step(update, "eval") == {2: {"loss": 0.68}}
    facts = update.facts
    assert (facts["project"], facts["run_name"], facts["max_steps"], facts["beta"], facts["loss_type"]) == ("sweep", "lr-1e-5", 3, 0.1, "sigmoid")
    assert facts["config"]["learning_rate"] == 1e-5 and facts["config"]["bf16"] is False
    assert update.finished and source.crash is None
    assert source.read() is None


def test_a_failed_file_store_run_is_a_crash():
    source = MlflowFileRun(str(file_run("lr-1e-4")))
    source.read()
    assert source.crash.label == "MLflow run FAILED"


def test_the_file_store_follows_appended_metric_lines(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(file_run("lr-1e-5"), run_dir)
    source = MlflowFileRun(str(run_dir))
    source.read()
    with open(run_dir / "metrics" / "loss", "a") as handle:
        handle.write("1796343000000 0.5 4\n1796343000001 0.4")
    update = source.read()
    assert [(r.step, r.values) for r in update.records] == [(4, {"loss": 0.5})]
    with open(run_dir / "metrics" / "loss", "a") as handle:
        handle.write(" 5\n")
    assert [(r.step, r.values) for r in source.read().records] == [(5, {"loss": 0.4})]


def test_a_broken_meta_yaml_is_a_note_once(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(file_run("lr-1e-5"), run_dir)
    (run_dir / "meta.yaml").write_text("!!python/object/apply:os.system ['true']\n")
    source = MlflowFileRun(str(run_dir))
    assert source.read().notes == ["meta.yaml: not a YAML mapping"]
    (run_dir / "metrics" / "loss").write_text("1 0.5 1\n")
    assert source.read().notes == []


def test_a_database_that_is_not_mlflows_is_not_taken_for_it(tmp_path):
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE runs (a)")
    with ReadOnlyDatabase(str(path)).connect() as connection:
        assert list_runs(connection) is None


@pytest.mark.parametrize("text, value", [("1e-05", 1e-5), ("10", 10), ("True", True), ("None", "None"), ("['a', 'b']", ["a", "b"]), ("[1, 2]", "[1, 2]")])
def test_params_text_is_turned_back_into_values(text, value):
    from rlhf_tui.core.sources.mlflow import _param_value

    assert _param_value(text) == value
