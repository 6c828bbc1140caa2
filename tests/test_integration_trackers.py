"""Real TRL trainers logging to W&B (offline), Trackio and MLflow while rlhf-top reads what they write.

Each training runs in its own process (tests/tracker_runs.py) with every library's files, caches
and config under the test's temporary directory. W&B is told to flush its log every second (it
flushes every 15 s by default), so that a short run can be watched while it trains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tracker_runs import start_training, train

import needs

from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.run import Run

pytestmark = pytest.mark.integration

for _module in ("torch", "trl", "datasets", "tokenizers", "wandb", "trackio", "mlflow"):
    needs.module(_module, "pip install -e '.[test,trl,trackers]'")


def runs_with(monitor: Monitor, kind: str) -> list[Run]:
    return [run for run in monitor.runs.values() if not run.gone and any(f.kind == kind for f in run.files.values())]


def watch(monitor: Monitor, process: subprocess.Popen, kind: str, until=None, timeout: float = 300) -> list[int | None]:
    """Scan and read every half second while the training runs; the last step seen each time."""
    seen: list[int | None] = []
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "the training did not end"
        monitor.scan()
        monitor.poll()
        runs = runs_with(monitor, kind)
        seen.append(runs[0].data[kind].last_step if runs and kind in runs[0].data else None)
        if until is not None and until(seen):
            break
        time.sleep(0.5)
    return seen


def caught_up(monitor: Monitor) -> Monitor:
    monitor.scan()
    monitor.catch_up()
    return monitor


def test_a_wandb_run_is_followed_while_it_trains_then_joins_its_output_dir(tmp_path):
    launch = tmp_path / "launch"
    process = start_training(launch, "dpo", ["wandb"], steps=10, sleep=0.6, run_name="dpo-live", wandb_flush_seconds=1)
    monitor = Monitor([str(launch)])
    seen = watch(monitor, process, "wandb")
    assert process.wait() == 0

    during = sorted({step for step in seen if step is not None and step < 10})
    assert len(during) >= 2, seen  # steps arrived while the run was training
    (run,) = runs_with(caught_up(monitor), "wandb")
    assert run.name == "out" and {f.kind for f in run.files.values()} >= {"wandb", "trainer_state"}
    assert (run.trainer, run.last_step, run.lifecycle(), run.primary) == ("dpo", 10, "finished", "wandb")
    assert run.role_key("win_rate") == "rewards/accuracies" and len(run.role("loss")) == 10
    assert run.facts["run_name"] == "dpo-live" and run.facts["config"]["beta"] == 0.1


def test_a_crash_in_a_wandb_logged_run_shows_its_traceback_from_the_console_records(tmp_path):
    launch = tmp_path / "launch"
    assert train(launch, "dpo", ["wandb"], steps=6, crash_at=3, run_name="dpo-crash") == 1
    monitor = caught_up(Monitor([str(launch)]))
    (run,) = runs_with(monitor, "wandb")
    assert run.lifecycle() == "crashed" and run.last_step == 2
    crash = run.crash
    assert crash.source.endswith(".wandb") and crash.exception == "RuntimeError: injected crash at step 3"
    assert crash.traceback.startswith("Traceback (most recent call last):") and "in on_step_end" in crash.traceback

    result = subprocess.run([sys.executable, "-m", "rlhf_tui", "--json", str(launch)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    (row,) = json.loads(result.stdout)["runs"]
    assert row["lifecycle"] == "crashed" and row["crash"] == "RuntimeError: injected crash at step 3"


def test_a_wandb_run_killed_by_sigkill_is_seen_killed(tmp_path):
    launch = tmp_path / "launch"
    process = start_training(launch, "dpo", ["wandb"], steps=60, sleep=0.5, run_name="dpo-killed", wandb_flush_seconds=1)
    monitor = Monitor([str(launch)])
    try:
        seen = watch(monitor, process, "wandb", until=lambda seen: (seen[-1] or 0) >= 3)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL and (seen[-1] or 0) >= 3
    (run,) = runs_with(caught_up(monitor), "wandb")
    monitor.check_processes()
    assert run.facts["pid"] == process.pid and run.process_alive is False
    assert not run.finished and run.crash is None
    assert run.lifecycle(time.time() + 60) == "killed"  # after the grace period for a final flush


def test_trackio_and_mlflow_logged_by_trl_are_one_run_with_the_output_dir_and_trackio_is_followed_live(tmp_path):
    launch = tmp_path / "launch"
    process = start_training(launch, "grpo", ["trackio", "mlflow"], steps=8, sleep=0.5, run_name="grpo-both")
    monitor = Monitor([str(launch)])
    seen = watch(monitor, process, "trackio")
    assert process.wait() == 0
    assert len({step for step in seen if step is not None and step < 8}) >= 2, seen

    (run,) = runs_with(caught_up(monitor), "trackio")
    assert run.name == "out" and {f.kind for f in run.files.values()} >= {"trackio", "mlflow", "trainer_state"}
    assert (run.trainer, run.last_step, run.lifecycle()) == ("grpo", 8, "finished")
    state = json.loads(next(launch.glob("out/checkpoint-*/trainer_state.json")).read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    for kind in ("trackio", "mlflow"):
        assert run.data[kind].series["loss"].values.tolist() == losses, kind
        assert not any(key.startswith("profiling/") for key in run.data[kind].series)
    assert run.facts["config"]["num_generations"] == 4


def test_an_mlflow_file_store_written_by_trl_is_read(tmp_path):
    launch = tmp_path / "launch"
    uri = f"file:{launch / 'mlruns'}"
    assert train(launch, "dpo", ["mlflow"], steps=4, run_name="dpo-files", mlflow_uri=uri) == 0
    (run,) = runs_with(caught_up(Monitor([str(launch)])), "mlflow_files")
    assert run.name == "out" and (run.trainer, run.last_step, run.lifecycle()) == ("dpo", 4, "finished")
    assert run.role_key("win_rate") == "rewards/accuracies" and run.facts["config"]["beta"] == 0.1


def test_nothing_is_written_outside_the_test_directory(tmp_path):
    """The home, caches and configs of every library pointed into the test directory."""
    home = Path(os.path.expanduser("~"))
    places = [home / ".cache" / "huggingface", home / ".cache" / "wandb", home / ".config" / "wandb", home / ".netrc", Path.cwd() / "wandb", Path.cwd() / "mlflow.db"]

    def state():
        return {path: (path.stat().st_mtime_ns if path.exists() else None) for path in places}

    before = state()
    launch = tmp_path / "launch"
    assert train(launch, "grpo", ["wandb", "trackio", "mlflow"], steps=2, run_name="grpo-isolated") == 0
    assert state() == before
    assert (launch / "wandb").is_dir() and (launch / "trackio").is_dir() and (launch / "mlflow.db").is_file()
