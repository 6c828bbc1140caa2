"""`rlhf-top --demo`: LiveDemo writes live runs in the real formats, the ordinary core reads them, and
nothing is left behind. Plus the writers' fidelity to what transformers really prints."""

import ast
import json
import os
import re
import threading
import time

import numpy as np
import pytest

from rlhf_tui.session import open_session
from rlhf_tui.demo import LiveDemo
from rlhf_tui.demo.console import printed_logs, tqdm_bar
from rlhf_tui.demo.plans import as_logged

from conftest import REAL_RUNS

SPEED = 20.0  # steps every 10-25 ms instead of 0.2-0.5 s
PATIENCE = 60.0  # seconds a slow machine may take to get the simulation that far; never a timing assertion

TRAINERS = {
    "dpo-healthy": "dpo",
    "dpo-stuck-at-ln2": "dpo",
    "grpo-reward-variance-collapse": "grpo",
    "ppo-kl-runaway": "ppo",
    "sft-nan-loss": "sft",
    "kto-cuda-oom": "kto",
}


def load(root):
    session = open_session([root])
    session.load()
    return {run.name: run for run in session.runs()}


def wait_for(root, condition, what):
    deadline = time.monotonic() + PATIENCE
    while True:
        runs = load(root)
        if condition(runs):
            return runs
        if time.monotonic() > deadline:
            pytest.fail(f"the demo never got to: {what}")
        time.sleep(0.1)


def demo_threads():
    return [thread for thread in threading.enumerate() if thread.name == "rlhf-top-demo"]


def test_live_demo_runs_are_read_by_the_core_as_they_grow():
    demo = LiveDemo(speed=SPEED)
    with demo as root:
        first = wait_for(
            root, lambda runs: set(runs) == set(TRAINERS) and all(r.last_step for r in runs.values()), "a step in every run"
        )
        assert {name: run.trainer for name, run in first.items()} == TRAINERS
        running = {name for name, run in first.items() if run.lifecycle() == "running"}
        assert running, "every run ended before the first look"

        later = wait_for(
            root,
            lambda runs: all(
                runs[name].last_step > first[name].last_step or runs[name].lifecycle() != "running" for name in running
            ),
            "new steps (or the end) in the runs that were running",
        )
        assert any(later[name].last_step > first[name].last_step for name in running)
        assert all(later[name].lifecycle() in ("running", "finished", "crashed") for name in TRAINERS)

        ended = wait_for(
            root,
            lambda runs: runs["kto-cuda-oom"].lifecycle() == "crashed"
            and all(runs[name].lifecycle() == "finished" for name in ("sft-nan-loss", "ppo-kl-runaway")),
            "the OOM crash and the end of the 200-step runs",
        )
        assert demo.error is None
        assert {name: list(run.notes) for name, run in ended.items() if run.notes} == {}

    crash = ended["kto-cuda-oom"].crash
    assert crash.reason == "oom"
    assert crash.last_step == 80
    assert "torch.OutOfMemoryError: CUDA out of memory" in crash.traceback
    loss = ended["sft-nan-loss"].role("loss").values
    assert np.isfinite(loss[0]) and not np.isfinite(loss).all()
    assert ended["dpo-stuck-at-ln2"].process_alive is True  # this process's pid and host: alive

    assert not os.path.exists(root)
    assert demo_threads() == []


def test_live_demo_cleans_up_when_the_app_fails():
    with pytest.raises(KeyboardInterrupt):
        with LiveDemo(speed=SPEED) as root:
            wait_for(root, lambda runs: len(runs) == len(TRAINERS), "every run directory")
            raise KeyboardInterrupt
    assert not os.path.exists(root)
    assert demo_threads() == []


TRAINING_BAR = re.compile(r"(?<=\r)( *\d+%\|[^|]*\| (\d+)/(\d+) \[\d\d:\d\d<\d\d:\d\d, ([\d.]+)it/s\])")


def test_progress_bars_are_drawn_as_tqdm_draws_them():
    real_log = (REAL_RUNS / "dpo_stuck" / "train.log").read_bytes().decode()
    bars = set(TRAINING_BAR.findall(real_log))
    assert len(bars) > 20
    without_elapsed = re.compile(r"\[\d\d:\d\d<")  # tqdm's rate is smoothed: elapsed is not done / rate
    for bar, done, total, rate in bars:
        drawn = tqdm_bar(int(done), int(total), int(done) / float(rate))
        assert without_elapsed.sub("[", drawn) == without_elapsed.sub("[", bar)
    assert tqdm_bar(0, 60, 0.0) == "  0%|          | 0/60 [00:00<?, ?it/s]"
    assert tqdm_bar(5, 60, 12.5) == "  8%|▊         | 5/60 [00:12<02:17,  2.50s/it]"


def test_log_dicts_are_printed_as_transformers_5_prints_them():
    real_log = (REAL_RUNS / "sft_small" / "train.log").read_text(encoding="utf-8")
    printed = [ast.literal_eval(m) for m in re.findall(r"\{'loss'[^}]*\}", real_log)]
    state = json.loads((REAL_RUNS / "sft_small" / "checkpoint-30" / "trainer_state.json").read_text())
    logged = [{k: v for k, v in entry.items() if k != "step"} for entry in state["log_history"]]
    assert len(printed) == len(logged) == 30
    for real, values in zip(printed, logged):
        assert ast.literal_eval(printed_logs(as_logged(values))) == real
    assert list(as_logged({"epoch": 1.0, "zeta": 2.0, "loss": 0.5}).keys()) == ["loss", "zeta", "epoch"]
