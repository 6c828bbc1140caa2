"""Tracker runs as rlhf-top runs: discovery, names, one run with the trainer's output dir, live reading."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import wandb_records as wr
from conftest import TRACKER_RUNS

from rlhf_tui.core.config import config_differences
from rlhf_tui.core.discover import discover
from rlhf_tui.core.monitor import Monitor


def monitor_of(*roots: Path) -> Monitor:
    monitor = Monitor([str(root) for root in roots])
    monitor.scan()
    monitor.catch_up()
    return monitor


def by_name(monitor: Monitor) -> dict:
    return {run.name: run for run in monitor.visible_runs()}


def wandb_run(launch: Path, run_id: str, *records: bytes, name: str = "") -> Path:
    """A W&B run folder as wandb-core lays it out, its log built from `records`."""
    run_dir = launch / "wandb" / f"offline-run-20261204_000000-{run_id}"
    (run_dir / "files").mkdir(parents=True)
    payloads = [wr.record(1, wr.header_record()), wr.record(2, wr.run(run_id, "proj", name=name))]
    payloads += [wr.record(number, payload) for number, payload in enumerate(records, start=3)]
    (run_dir / f"run-{run_id}.wandb").write_bytes(wr.frame(payloads))
    return run_dir


def trainer_state(directory: Path, steps: int = 3) -> None:
    (directory / "checkpoint-3").mkdir(parents=True)
    history = [{"loss": 0.7, "rewards/accuracies": 0.5, "step": step} for step in range(1, steps + 1)]
    state = {"global_step": steps, "max_steps": steps, "logging_steps": 1, "log_history": history}
    (directory / "checkpoint-3" / "trainer_state.json").write_text(json.dumps(state))


def test_a_training_logged_to_three_trackers_is_one_run_with_its_output_dir(tracker_runs):
    (tracker_runs / "out-dpo").mkdir()  # the trainer made it; nothing was saved in it before the crash
    runs = by_name(monitor_of(tracker_runs))
    assert sorted(runs) == ["out-dpo", "out-grpo", "sweep/lr-1e-4", "sweep/lr-1e-5"]

    grpo = runs["out-grpo"]
    assert {f.kind for f in grpo.files.values()} == {"trainer_state", "model_card", "wandb", "trackio", "mlflow"}
    assert (grpo.trainer, grpo.last_step, grpo.max_steps, grpo.lifecycle()) == ("grpo", 4, 4, "finished")
    assert grpo.primary == "wandb" and len(grpo.role("loss")) == 4  # every step once, four sources
    assert not grpo.notes

    dpo = runs["out-dpo"]
    assert {f.kind for f in dpo.files.values()} == {"wandb", "trackio", "mlflow"}
    assert (dpo.trainer, dpo.last_step, dpo.lifecycle()) == ("dpo", 2, "crashed")
    assert dpo.crash.exception == "RuntimeError: injected crash at step 3" and "Traceback" in dpo.crash.traceback
    config = dpo.facts["config"]
    assert config["output_dir"] == "out-dpo" and config["beta"] == 0.1 and config["max_steps"] == 6


def test_tracker_runs_without_an_output_dir_are_runs_named_by_their_tracker(tracker_runs):
    runs = by_name(monitor_of(tracker_runs))
    assert sorted(runs) == [
        "Default/dpo-crash",
        "huggingface/dpo-crash",
        "out-grpo",
        "rlhf-top-tests/dpo-crash",
        "sweep/lr-1e-4",
        "sweep/lr-1e-5",
    ]
    assert runs["rlhf-top-tests/dpo-crash"].lifecycle() == "crashed"
    assert runs["sweep/lr-1e-4"].crash.label == "MLflow run FAILED"
    assert runs["sweep/lr-1e-5"].lifecycle() == "finished"


def test_wandb_internals_are_not_runs(tracker_runs):
    run_dir = next((tracker_runs / "wandb").glob("offline-run-*"))
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "debug-internal.log").write_text("Traceback (most recent call last):\nValueError: wandb's own\n")
    (run_dir / "files" / "metrics.jsonl").write_text('{"step": 1, "loss": 9}\n')  # a file the user saved with wandb.save
    os.symlink(run_dir / "logs" / "debug-internal.log", tracker_runs / "wandb" / "debug-internal.log")
    os.symlink(run_dir.name, tracker_runs / "wandb" / "latest-run")
    found = discover([str(tracker_runs)])
    kinds = {path: kind for run in found.runs.values() for path, kind in run.items()}
    assert not [path for path in kinds if "debug-internal" in path or path.endswith(".jsonl")]
    assert not [run for run in found.runs if run.endswith(("latest-run", "wandb"))]
    assert not found.notes


def test_an_absolute_output_dir_from_another_machine_is_found_by_its_name(tmp_path):
    trainer_state(tmp_path / "out-x")
    wandb_run(tmp_path, "abc", wr.config({"output_dir": "/scratch/someone/exp/out-x"}), wr.history({"train/loss": 0.5, "train/global_step": 1}))
    (run,) = by_name(monitor_of(tmp_path)).values()
    assert run.name == "out-x" and {f.kind for f in run.files.values()} == {"trainer_state", "wandb"}


def test_several_runs_of_one_tracker_naming_the_same_output_dir_stay_apart(tmp_path):
    trainer_state(tmp_path / "out")
    for run_id in ("aaa", "bbb"):
        wandb_run(tmp_path, run_id, wr.config({"output_dir": "out"}), name=f"sweep-{run_id}")
    assert sorted(by_name(monitor_of(tmp_path))) == ["out", "proj/sweep-aaa", "proj/sweep-bbb"]


def test_a_wandb_run_found_before_its_output_dir_moves_there_when_the_dir_appears(tmp_path):
    wandb_run(tmp_path, "abc", wr.config({"output_dir": "out"}), *(wr.history({"train/loss": 0.5, "train/global_step": s}) for s in (1, 2, 3)))
    monitor = monitor_of(tmp_path)
    (alone,) = monitor.visible_runs()
    assert alone.name == "proj/abc" and alone.last_step == 3

    trainer_state(tmp_path / "out")
    changed = monitor.scan()
    monitor.catch_up()
    runs = by_name(monitor)
    assert alone in changed and alone.gone and "its files now belong to another run" in alone.notes
    joined = runs["out"]
    assert {f.kind for f in joined.files.values()} == {"trainer_state", "wandb"}
    assert joined.primary == "wandb" and len(joined.role("loss")) == 3


def test_a_growing_wandb_log_is_followed_and_its_steps_arrive(tmp_path):
    run_dir = wandb_run(tmp_path, "live", *(wr.history({"train/loss": 1 / s, "train/global_step": s}) for s in range(1, 41)))
    log = next(run_dir.glob("*.wandb"))
    data = log.read_bytes()
    log.write_bytes(data[:1000])
    monitor = monitor_of(tmp_path)
    (run,) = monitor.visible_runs()
    seen = [run.last_step]
    written = 1000
    while written < len(data):
        with open(log, "ab") as handle:
            handle.write(data[written : written + 150])
        written += 150
        monitor.poll([str(log)])
        seen.append(run.last_step)
    assert run.last_step == 40 and len(run.role("loss")) == 40
    assert len(set(seen)) > 10 and seen == sorted(seen, key=lambda step: step or 0)


def test_trackio_rows_written_by_a_live_writer_reach_the_run(tracker_runs):
    database = tracker_runs / "trackio" / "huggingface.db"
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode = WAL")
    monitor = monitor_of(tracker_runs)
    run = by_name(monitor)["out-grpo"]
    trackio = run.data["trackio"]
    assert trackio.last_step == 4
    key = next(f.follower.run_key for f in run.files.values() if f.kind == "trackio")
    writer.execute(
        "INSERT INTO metrics (run_id, timestamp, run_name, step, metrics) VALUES (?, '2026-12-04T00:30:00+00:00', 'grpo-ok', 99, ?)",
        (key, json.dumps({"train/loss": 0.1, "train/global_step": 5})),
    )
    writer.commit()
    monitor.poll([str(database) + "-wal"])  # what inotify reports for a WAL database
    writer.close()
    assert trackio.last_step == 5


def test_a_database_named_like_mlflows_that_is_not_sqlite_is_a_note_other_dbs_are_ignored(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mlflow.db").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cache.db").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "c").mkdir()
    with sqlite3.connect(tmp_path / "c" / "app.db") as connection:
        connection.execute("CREATE TABLE t (a)")
    found = discover([str(tmp_path)])
    assert found.runs == {}
    assert found.notes == [f"{tmp_path / 'a' / 'mlflow.db'}: not an SQLite database"]


def test_the_config_of_runs_says_what_differs_between_them(tracker_runs):
    (tracker_runs / "out-dpo").mkdir()
    runs = by_name(monitor_of(tracker_runs))
    differing = config_differences([runs["out-grpo"], runs["out-dpo"]])
    assert differing["beta"] == [0.0, 0.1]
    assert differing["output_dir"] == ["out-grpo", "out-dpo"]
    assert "learning_rate" not in differing and "vocab_size" not in differing
    assert config_differences([runs["sweep/lr-1e-5"], runs["sweep/lr-1e-4"]])["learning_rate"] == [1e-5, 1e-4]


def test_json_output_carries_each_runs_config(tracker_runs):
    result = subprocess.run([sys.executable, "-m", "rlhf_tui", "--json", str(tracker_runs)], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    runs = {row["name"]: row for row in json.loads(result.stdout)["runs"]}
    assert runs["out-grpo"]["config"]["num_generations"] == 4
    assert runs["sweep/lr-1e-5"]["config"] == {"learning_rate": 1e-5, "beta": 0.1, "max_steps": 3, "output_dir": "out-file-store", "loss_type": "['sigmoid']", "bf16": False}


def test_with_several_roots_tracker_names_keep_their_root(tmp_path, tracker_runs):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(TRACKER_RUNS / "mlruns", other / "mlruns")
    names = sorted(by_name(monitor_of(tracker_runs, other)))
    assert "other/sweep/lr-1e-5" in names and "launch/sweep/lr-1e-5" in names


def test_a_root_inside_a_trackers_folder_is_read_as_that_trackers(tracker_runs):
    run_dir = next((tracker_runs / "wandb").glob("offline-run-*"))
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "debug-internal.log").write_text("not a run\n")
    for root, names in [
        (run_dir, None),
        (tracker_runs / "wandb", ["rlhf-top-tests/dpo-crash", "rlhf-top-tests/grpo-ok"]),
        (tracker_runs / "mlruns", ["sweep/lr-1e-4", "sweep/lr-1e-5"]),
        (next(tracker_runs.glob("mlruns/*/*/meta.yaml")).parent, None),
    ]:
        runs = by_name(monitor_of(root))
        assert len(runs) == (len(names) if names else 1) and all(run.last_step for run in runs.values())
        if names:
            assert sorted(runs) == names
