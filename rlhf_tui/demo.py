"""Simulated runs written to disk the way real trainers write them: `rlhf-top --demo` and `sample_runs/`.

The metric streams come from `rlhf_tui.simulate`; this module only writes them, in the formats rlhf-top
follows in real run directories (shapes copied from the real TRL runs in `tests/fixtures/real_runs`):

- `train.log`: what `python train.py 2>&1 | tee train.log` captures of a transformers 5.x run: log
  dicts with string values printed by `tqdm.write` between `\\r` redraws of the progress bar, and the
  traceback when the run dies;
- Post-Training Toolkit's `DiagnosticsCallback` files: `metrics.jsonl` with PTT's renamed keys, the
  run-average loss row and footer at the end, `run_metadata*.json`, `postmortem.json` on a crash;
- rlhf-top's own `RunLogger` files: the same layout with raw TRL keys and `"writer": "rlhf-top"`;
- `checkpoint-N/trainer_state.json` and the model card TRL writes at every save.

Every line is appended and flushed on its own, as a live trainer does, and documents are replaced in
one step, so the ordinary readers follow these runs by the same code paths as real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from rlhf_tui.core import runlog
from rlhf_tui.core.metrics import trainer_label
from rlhf_tui.core.records import Record
from rlhf_tui.simulate import simulate

CONSOLE = "console"  # train.log
PTT = "ptt"  # Post-Training Toolkit's files, in `RunPlan.ptt_dir`
RLHF_TOP = "rlhf-top"  # rlhf-top's RunLogger files, in the run directory
CHECKPOINTS = "checkpoints"  # checkpoint-N/trainer_state.json and README.md at every save

VERSIONS = {"python": "3.11.7", "torch": "2.13.0+cu128", "transformers": "5.24.0", "trl": "1.16.0"}
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
END_DELAY = 1.5  # seconds from the last logged step to the end of the run (summary, crash)

# PTT keeps the keys it knows under its own names (pairs of PTT name, TRL key, in PTT's order, read
# off the real runs). For DPO its "reward_mean" is rewards/chosen and its "reward_std" rewards/margins.
PTT_KEYS = {
    "dpo": (
        ("reward_mean", "rewards/chosen"),
        ("reward_std", "rewards/margins"),
        ("dpo_loss", "loss"),
        ("win_rate", "rewards/accuracies"),
        ("reward_margin", "rewards/margins"),
        ("logps_chosen", "logps/chosen"),
        ("logps_rejected", "logps/rejected"),
        ("logprobs", "logps/chosen"),
        ("rewards_chosen", "rewards/chosen"),
        ("rewards_rejected", "rewards/rejected"),
    ),
    "grpo": (
        ("reward_mean", "reward"),
        ("kl", "kl"),
        ("grpo_loss", "loss"),
        ("group_reward_mean", "reward"),
        ("entropy", "entropy"),
    ),
    "sft": (("sft_loss", "loss"),),
}
# transformers logs the loss, grad_norm and learning_rate first and adds the epoch last.
_LOGGED_FIRST = ("loss", "grad_norm", "learning_rate", "eval_loss")


def iso_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="microseconds")


def as_logged(values: dict[str, float]) -> dict[str, float]:
    """A record's values in the order a TRL trainer logs them."""
    first = {key: values[key] for key in _LOGGED_FIRST if key in values}
    rest = {key: value for key, value in values.items() if key not in first and key != "epoch"}
    last = {"epoch": values["epoch"]} if "epoch" in values else {}
    return {**first, **rest, **last}


def ptt_metrics(trainer: str, logs: dict[str, float]) -> dict[str, float]:
    """A log dict as PTT records it: its names, rounded to 6 decimals, unknown keys dropped."""
    return {name: round(float(logs[key]), 6) for name, key in PTT_KEYS[trainer] if key in logs}


def printed_logs(logs: dict[str, Any]) -> str:
    """A log dict as transformers 5.x prints it: floats as `.4g` strings, ints as they are."""
    return str({key: f"{value:.4g}" if isinstance(value, float) else value for key, value in logs.items()})


# --- files written the way a live process writes them ----------------------------------------


class AppendedFile:
    """A log file a process appends to: every write is flushed at once, as a live monitor needs."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8", newline="")

    def write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def write_json_line(self, obj: dict[str, Any]) -> None:
        self.write(runlog.line(obj))

    def close(self) -> None:
        self._file.close()


def replace_file(path: str, text: str) -> None:
    """Replace a file in one step, so a reader never sees half of it."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, f".{name}.partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)


def write_document(path: str, obj: dict[str, Any], sort_keys: bool = False) -> None:
    replace_file(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


# --- train.log --------------------------------------------------------------------------------

_BAR_SYMBOLS = " ▏▎▍▌▋▊▉█"  # tqdm's Unicode bar: eighths of a cell
_BAR_CELLS = 10
_LOADING_WEIGHTS = (
    "\rLoading weights:   0%|          | 0/290 [00:00<?, ?it/s]"
    "\rLoading weights: 100%|██████████| 290/290 [00:00<00:00, 2315.60it/s]\n"
)
# A save draws a nested bar one line down; its cursor-up escape is how readers tell it apart.
_WRITING_SHARDS = (
    "\n\rWriting model shards:   0%|          | 0/1 [00:00<?, ?it/s]\x1b[A"
    "\rWriting model shards: 100%|██████████| 1/1 [00:00<00:00,  1.64it/s]\n"
)


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def tqdm_bar(done: int, total: int, elapsed: float) -> str:
    """tqdm's default bar, `  8%|▊         | 5/60 [00:10<01:50,  2.00s/it]`."""
    fraction = done / total
    whole, eighths = divmod(int(fraction * _BAR_CELLS * 8), 8)
    bar = _BAR_SYMBOLS[-1] * whole
    if whole < _BAR_CELLS:
        bar += _BAR_SYMBOLS[eighths] + " " * (_BAR_CELLS - whole - 1)
    if done == 0 or elapsed <= 0:
        timing = f"{_interval(elapsed)}<?, ?it/s"
    else:
        rate = done / elapsed
        speed = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
        timing = f"{_interval(elapsed)}<{_interval((total - done) / rate)}, {speed}"
    return f"{100 * fraction:3.0f}%|{bar}| {done}/{total} [{timing}]"


class ConsoleLog:
    """`train.log`: a transformers 5.x run as `python train.py 2>&1 | tee train.log` captures it.

    The training bar is redrawn in place with `\\r`; a log dict goes through `tqdm.write`, which blanks
    the bar, prints the dict on its own line and draws the bar again.
    """

    def __init__(self, path: str, max_steps: int) -> None:
        self._out = AppendedFile(path)
        self._max_steps = max_steps
        self._bar = ""
        self._out.write(_LOADING_WEIGHTS)
        self.progress(0, 0.0)

    def progress(self, step: int, elapsed: float) -> None:
        self._bar = tqdm_bar(step, self._max_steps, elapsed)
        self._out.write("\r" + self._bar)

    def log(self, logs: dict[str, Any], step: int, elapsed: float) -> None:
        self._out.write(f"\r{' ' * len(self._bar)}\r{printed_logs(logs)}\n")
        self.progress(step, elapsed)

    def checkpoint_saved(self) -> None:
        self._out.write(_WRITING_SHARDS)

    def end(self, summary: dict[str, Any], step: int, elapsed: float) -> None:
        self.log(summary, step, elapsed)
        self._out.write(f"\r{self._bar}\n")

    def died(self, traceback: str) -> None:
        """Python prints the traceback right where the bar left the cursor, mid-line."""
        self._out.write(traceback)

    def close(self) -> None:
        self._out.close()


# --- Post-Training Toolkit and rlhf-top's RunLogger --------------------------------------------


@dataclass(frozen=True)
class Host:
    """Where the simulated process runs: its host name and pid go into the metadata."""

    name: str
    pid: int


@dataclass(frozen=True)
class Death:
    """How a run dies after its last logged step: the exit reason PTT and RunLogger record and the
    traceback Python prints, ending with the exception line."""

    exit_reason: str  # "exception", "oom"
    traceback: str

    @property
    def exception(self) -> str:
        return self.traceback.rstrip("\n").rsplit("\n", 1)[-1]


def _environment(host: Host) -> dict[str, Any]:
    return {
        "python_version": f"{VERSIONS['python']} (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "platform": "Linux-6.8.0-87-generic-x86_64-with-glibc2.39",
        "hostname": host.name,
        "pid": host.pid,
        "torch_version": VERSIONS["torch"],
        "cuda_available": True,
        "transformers_version": VERSIONS["transformers"],
        "trl_version": VERSIONS["trl"],
    }


def _run_id(start: float) -> str:
    return datetime.fromtimestamp(start, timezone.utc).strftime("%Y%m%d_%H%M%S")


class PttFiles:
    """What PTT's `DiagnosticsCallback(run_dir=directory)` writes."""

    def __init__(self, directory: str, plan: RunPlan, host: Host, start: float) -> None:
        os.makedirs(directory, exist_ok=True)
        self._directory = directory
        self._trainer = plan.trainer
        self._host = host
        self._run_id = _run_id(start)
        config_hash = hashlib.sha256(plan.name.encode()).hexdigest()[:16]
        self._metadata = {
            "schema_version": runlog.SCHEMA_VERSION,
            "run_id": self._run_id,
            "trainer_type": plan.trainer,
            "model_name": plan.model,
            "dataset_size": None,
            "start_time": iso_time(start),
            "end_time": None,
            "status": "running",
            "total_steps": 0,
            "world_size": 1,
            "global_rank": 0,
            "git_sha": None,
            "config_hash": config_hash,
            "environment": _environment(host),
            "config": {"log_every_n_steps": 1, "stop_on_critical": False, "training_args": plan.training_args()},
        }
        self._last_metrics: dict[str, float] = {}
        self._write_metadata("run_metadata_start.json", runlog.METADATA_FILE)
        self._metrics = AppendedFile(os.path.join(directory, runlog.METRICS_FILE))
        self._metrics.write_json_line(runlog.header(plan.trainer, self._run_id, iso_time(start), config_hash=config_hash))

    def record(self, step: int, now: float, logs: dict[str, float]) -> None:
        self._last_metrics = ptt_metrics(self._trainer, logs)
        self._metrics.write_json_line(runlog.step(step, iso_time(now), self._last_metrics))

    def finish(self, step: int, now: float, average_loss: float) -> None:
        """PTT's end: a second row at the last step holding the run-average loss, then the footer."""
        loss_name = next(name for name, key in PTT_KEYS[self._trainer] if key == "loss")
        self._metrics.write_json_line(runlog.step(step, iso_time(now), {loss_name: round(average_loss, 6)}))
        self._metrics.write_json_line(runlog.footer(self._run_id, step, iso_time(now)))
        self._metadata.update(end_time=iso_time(now), status="completed", total_steps=step)
        self._write_metadata(runlog.METADATA_FILE, "run_metadata_final.json")

    def died(self, now: float, last_step: int, death: Death) -> None:
        """PTT's postmortem; run_metadata.json keeps saying "running", as PTT leaves it."""
        exception_type, _, message = death.exception.partition(": ")
        event = {"type": exception_type.rsplit(".", 1)[-1], "message": message, "traceback": death.traceback}
        write_document(
            os.path.join(self._directory, runlog.POSTMORTEM_FILE),
            {
                "exit_reason": death.exit_reason,
                "exit_code": None,
                "last_step": last_step,
                "timestamp": iso_time(now),
                "traceback": death.traceback,
                "last_metrics": self._last_metrics,
                "recent_events": [f"[{iso_time(now)}] exception: {event}"],
                "environment": _environment(self._host),
                "cuda_error": message if death.exit_reason == "oom" else None,
            },
        )

    def close(self) -> None:
        self._metrics.close()

    def _write_metadata(self, *names: str) -> None:
        for name in names:
            write_document(os.path.join(self._directory, name), self._metadata)


class RunLoggerFiles:
    """What rlhf-top's own `RunLogger(run_dir=directory)` writes: raw TRL keys, NaN kept."""

    def __init__(self, directory: str, plan: RunPlan, host: Host, start: float) -> None:
        self._directory = directory
        self._run_id = _run_id(start)
        self._metadata = {
            "schema_version": runlog.SCHEMA_VERSION,
            "writer": runlog.OWN_WRITER,
            "run_id": self._run_id,
            "trainer_type": plan.trainer,
            "config_class": f"{trainer_label(plan.trainer)}Config",
            "model_name": plan.model,
            "dataset_size": None,
            "max_steps": plan.max_steps,
            "loss_type": plan.config.get("loss_type"),
            "beta": plan.config.get("beta"),
            "training_args": plan.training_args(),
            "versions": VERSIONS,
            "host": host.name,
            "pid": host.pid,
            "start_time": iso_time(start),
            "end_time": None,
            "resumed_from_step": None,
            "status": "running",
        }
        self._metrics = AppendedFile(os.path.join(directory, runlog.METRICS_FILE))
        self._metrics.write_json_line(runlog.header(plan.trainer, self._run_id, iso_time(start), writer=runlog.OWN_WRITER))
        self._write_metadata()

    def record(self, step: int, now: float, logs: dict[str, float], phase: str) -> None:
        self._metrics.write_json_line(runlog.step(step, iso_time(now), logs, phase))

    def finish(self, step: int, now: float, summary: dict[str, float]) -> None:
        self._metrics.write_json_line(runlog.summary(summary, iso_time(now)))
        self._metrics.write_json_line(runlog.footer(self._run_id, step, iso_time(now)))
        self._metadata.update(status="completed", end_time=iso_time(now))
        self._write_metadata()

    def died(self, now: float, last_step: int, death: Death) -> None:
        write_document(
            os.path.join(self._directory, runlog.POSTMORTEM_FILE),
            {
                "exit_reason": death.exit_reason,
                "exit_code": None,
                "last_step": last_step,
                "timestamp": iso_time(now),
                "exception": death.exception,
                "traceback": death.traceback,
            },
        )
        self._metadata.update(status="crashed", end_time=iso_time(now))
        self._write_metadata()

    def close(self) -> None:
        self._metrics.close()

    def _write_metadata(self) -> None:
        write_document(os.path.join(self._directory, runlog.METADATA_FILE), self._metadata)


# --- checkpoints ------------------------------------------------------------------------------

_MODEL_CARD = """---
base_model: {model}
library_name: transformers
model_name: {name}
tags:
- generated_from_trainer
- {trainer}
- trl
licence: license
---

# Model Card for {name}

This model is a fine-tuned version of [{model}](https://huggingface.co/{model}).
It has been trained using [TRL](https://github.com/huggingface/trl).

## Training procedure

This model was trained with {label}.

### Framework versions

- TRL: {trl}
- Transformers: {transformers}
- Pytorch: {torch}
"""


def write_checkpoint(run_dir: str, plan: RunPlan, step: int, history: list[dict[str, float]]) -> None:
    """What a save leaves that rlhf-top reads: `checkpoint-N/trainer_state.json` and the model card."""
    checkpoint = os.path.join(run_dir, f"checkpoint-{step}")
    os.makedirs(checkpoint, exist_ok=True)
    epoch = next((entry["epoch"] for entry in reversed(history) if "epoch" in entry), 0.0)
    state = {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": epoch,
        "eval_steps": plan.config.get("eval_steps", 500),
        "global_step": step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": 1,
        "max_steps": plan.max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": max(1, math.ceil(epoch)),
        "save_steps": plan.save_steps,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": step >= plan.max_steps,
                },
                "attributes": {},
            }
        },
        "total_flos": 0.0,
        "train_batch_size": plan.config.get("per_device_train_batch_size", 8),
        "trial_name": None,
        "trial_params": None,
    }
    write_document(os.path.join(checkpoint, "trainer_state.json"), state, sort_keys=True)
    card = _MODEL_CARD.format(
        model=plan.model, name=plan.name, trainer=plan.trainer, label=trainer_label(plan.trainer), **VERSIONS
    )
    replace_file(os.path.join(run_dir, "README.md"), card)


# --- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPlan:
    """One simulated run: its metric stream and what the process writes about it.

    records: the logged steps (raw TRL keys; eval records keep their `eval_` keys), from `simulate`.
    config: the training arguments (max_steps, learning_rate, per_device_train_batch_size, ...).
    stops_after: the last step logged before the run dies of `death`, or is killed when there is
    no death (it vanishes without a word, as under SIGKILL); None: it runs to the end and finishes.
    """

    name: str
    trainer: str
    records: tuple[Record, ...]
    config: dict[str, Any]
    formats: tuple[str, ...]
    stops_after: int | None = None
    death: Death | None = None
    ptt_dir: str = "ptt"
    save_steps: int = 50
    model: str = MODEL

    @property
    def max_steps(self) -> int:
        return self.config["max_steps"]

    def training_args(self) -> dict[str, Any]:
        return {"output_dir": f"/data/runs/{self.name}", **self.config, "save_steps": self.save_steps, "seed": 42}


def simulated_plan(
    name: str, trainer: str, scenario: str, steps: int, seed: int, formats: tuple[str, ...], **options: Any
) -> RunPlan:
    """A plan whose metric stream and training arguments come from `simulate`."""
    run = simulate(trainer, scenario, steps, seed)
    return RunPlan(name, trainer, tuple(run.records), dict(run.facts["config"]), formats, **options)


class RunWriter:
    """Writes one planned run into `run_dir`: `start`, `log_next` while there is a `next_record`, `end`.

    The end is the summary and footer of a finished run, the traceback and postmortem of one that
    died, nothing at all for a killed one.
    """

    def __init__(self, run_dir: str, plan: RunPlan, host: Host) -> None:
        self.run_dir = run_dir
        self.plan = plan
        self.host = host
        self._next = 0
        self._last_step = 0
        self._started = 0.0
        self._history: list[dict[str, float]] = []
        self._console: ConsoleLog | None = None
        self._ptt: PttFiles | None = None
        self._run_logger: RunLoggerFiles | None = None

    def start(self, now: float) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        self._started = now
        plan = self.plan
        if CONSOLE in plan.formats:
            self._console = ConsoleLog(os.path.join(self.run_dir, "train.log"), plan.max_steps)
        if PTT in plan.formats:
            self._ptt = PttFiles(os.path.join(self.run_dir, plan.ptt_dir), plan, self.host, now)
        if RLHF_TOP in plan.formats:
            self._run_logger = RunLoggerFiles(self.run_dir, plan, self.host, now)

    @property
    def next_record(self) -> Record | None:
        """The record `log_next` writes, None once the run has nothing more to log."""
        plan = self.plan
        if self._next >= len(plan.records) or self._last_step == plan.stops_after:
            return None
        return plan.records[self._next]

    def log_next(self, now: float) -> None:
        record = self.plan.records[self._next]
        self._next += 1
        if record.phase == "eval":
            self._log_eval(record, now)
        else:
            self._log_train(record, now)

    def end(self, now: float) -> None:
        """Finish, die or just stop (killed), as planned; the files are closed."""
        if self.plan.stops_after is None:
            self._finish(now)
        elif self.plan.death is not None:
            self._die(now, self.plan.death)
        self.close()

    def close(self) -> None:
        for files in (self._console, self._ptt, self._run_logger):
            if files is not None:
                files.close()
        self._console = self._ptt = self._run_logger = None

    def _log_train(self, record: Record, now: float) -> None:
        step = record.step
        logs = as_logged(record.values)
        self._last_step = step
        self._history.append({**logs, "step": step})
        elapsed = now - self._started
        if self._console is not None:
            self._console.progress(step, elapsed)
            self._console.log(logs, step, elapsed)
        if self._ptt is not None:
            self._ptt.record(step, now, logs)
        if self._run_logger is not None:
            self._run_logger.record(step, now, logs, "train")
        if CHECKPOINTS in self.plan.formats and (step % self.plan.save_steps == 0 or step == self.plan.max_steps):
            write_checkpoint(self.run_dir, self.plan, step, self._history)
            if self._console is not None:
                self._console.checkpoint_saved()

    def _log_eval(self, record: Record, now: float) -> None:
        """An evaluation logs its `eval_` keys with the epoch of the step it ran at (PTT skips it)."""
        epoch = self._history[-1].get("epoch") if self._history else None
        logs = as_logged({**record.values, **({"epoch": epoch} if epoch is not None else {})})
        self._history.append({**logs, "step": record.step})
        if self._console is not None:
            self._console.log(logs, record.step, now - self._started)
        if self._run_logger is not None:
            self._run_logger.record(record.step, now, logs, "eval")

    def _finish(self, now: float) -> None:
        runtime = now - self._started
        steps = self._last_step
        losses = [entry["loss"] for entry in self._history if "loss" in entry]
        average_loss = sum(losses) / len(losses) if losses else math.nan
        summary = {
            "train_runtime": runtime,
            "train_samples_per_second": steps * self.plan.config.get("per_device_train_batch_size", 8) / runtime,
            "train_steps_per_second": steps / runtime,
            "train_loss": average_loss,
        }
        epoch = next((entry["epoch"] for entry in reversed(self._history) if "epoch" in entry), None)
        if epoch is not None:
            summary["epoch"] = epoch
        if self._console is not None:
            self._console.end(summary, steps, runtime)
        if self._ptt is not None:
            self._ptt.finish(steps, now, average_loss)
        if self._run_logger is not None:
            self._run_logger.finish(steps, now, summary)

    def _die(self, now: float, death: Death) -> None:
        if self._console is not None:
            self._console.died(death.traceback)
        if self._ptt is not None:
            self._ptt.died(now, self._last_step, death)
        if self._run_logger is not None:
            self._run_logger.died(now, self._last_step, death)


STATIC_HOST = Host("gpu-node-07", 48213)  # made up: no static run reads as alive or killed anywhere


def write_run(run_dir: str, plan: RunPlan, started: float, ended: float | None = None) -> None:
    """Write a whole run at once (the static runs of `sample_runs/`): it starts at `started`, logs
    each record at the record's time and ends at `ended`, by default END_DELAY after its last record."""
    writer = RunWriter(run_dir, plan, STATIC_HOST)
    try:
        writer.start(started)
        now = started
        while (record := writer.next_record) is not None:
            now = record.time
            writer.log_next(now)
        writer.end(now + END_DELAY if ended is None else ended)
    finally:
        writer.close()


def cuda_oom_traceback(script: str, frames: str) -> str:
    """A CUDA OOM in `trainer.train()` called from `script`'s main(); `frames` are the trainer's own
    frames between the Trainer loop and the model forward whose allocation failed."""
    site = "/opt/conda/lib/python3.11/site-packages"
    return (
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 142, in <module>\n'
        "    main()\n"
        f'  File "{script}", line 137, in main\n'
        "    trainer.train()\n"
        f'  File "{site}/transformers/trainer.py", line 1576, in train\n'
        "    return inner_training_loop(\n"
        "           ^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/transformers/trainer.py", line 1660, in _inner_training_loop\n'
        "    self._run_epoch(\n"
        f'  File "{site}/transformers/trainer.py", line 1931, in _run_epoch\n'
        "    tr_loss_step = self.training_step(model, inputs, num_items_in_batch)\n"
        "                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        + frames.format(site=site)
        + f'  File "{site}/torch/nn/modules/module.py", line 1775, in _wrapped_call_impl\n'
        "    return self._call_impl(*args, **kwargs)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/torch/nn/modules/module.py", line 1786, in _call_impl\n'
        "    return forward_call(*args, **kwargs)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/transformers/models/qwen2/modeling_qwen2.py", line 455, in forward\n'
        "    logits = self.lm_head(hidden_states[:, slice_indices, :])\n"
        "             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.64 GiB. GPU 0 has a total "
        "capacity of 79.19 GiB of which 3.02 GiB is free. Including non-PyTorch memory, this process has "
        "76.16 GiB memory in use. Of the allocated memory 70.87 GiB is allocated by PyTorch, and 4.61 GiB "
        "is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
        "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)\n"
    )


_KTO_FRAMES = (
    '  File "{site}/transformers/trainer.py", line 2675, in training_step\n'
    "    loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1451, in compute_loss\n'
    "    loss, metrics = self.get_batch_loss_metrics(model, inputs)\n"
    "                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1372, in get_batch_loss_metrics\n'
    "    forward_output = self.forward(model, batch)\n"
    "                     ^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1144, in forward\n'
    '    outputs = model(batch["completion_input_ids"], attention_mask=batch["completion_attention_mask"])\n'
    "              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)


# --- the live demo ----------------------------------------------------------------------------


def demo_plans(seed: int = 0) -> list[tuple[RunPlan, float]]:
    """The demo's runs and the seconds between their steps: within a minute at that pace a
    newcomer sees them train, the stuck, collapsing, runaway and NaN runs flagged and a crash land."""
    return [
        (simulated_plan("dpo-healthy", "dpo", "healthy", 400, seed, (CONSOLE, PTT, CHECKPOINTS)), 0.30),
        (simulated_plan("dpo-stuck-at-ln2", "dpo", "no_signal", 400, seed + 1, (RLHF_TOP,)), 0.25),
        (
            simulated_plan(
                "grpo-reward-variance-collapse", "grpo", "variance_collapse", 200, seed + 2, (CONSOLE, CHECKPOINTS)
            ),
            0.30,
        ),
        (simulated_plan("ppo-kl-runaway", "ppo", "kl_runaway", 200, seed + 3, (RLHF_TOP,)), 0.35),
        (simulated_plan("sft-nan-loss", "sft", "nan_loss", 200, seed + 4, (CONSOLE, PTT)), 0.25),
        (
            simulated_plan(
                "kto-cuda-oom",
                "kto",
                "healthy",
                300,
                seed + 5,
                (CONSOLE, RLHF_TOP),
                stops_after=80,
                death=Death("oom", cuda_oom_traceback("/home/ml/recipes/train_kto.py", _KTO_FRAMES)),
            ),
            0.40,
        ),
    ]


@dataclass
class _LiveRun:
    writer: RunWriter
    period: float
    due: float  # time.monotonic() of its next step
    ended: bool = False


class LiveDemo:
    """`with LiveDemo() as root:` a temporary directory in which simulated runs train live.

    A background thread appends a step to each run every 0.2-0.5 s (the runs staggered), divided by
    `speed` (tests run it faster). The runs carry this process's host and pid, so they read as
    alive. On exit the thread is stopped and joined and the directory removed, also when the body
    raised. A failure inside the thread stops the simulation and is kept in `error` (not logged:
    the terminal belongs to the TUI).
    """

    def __init__(self, speed: float = 1.0, seed: int = 0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._plans = demo_plans(seed)
        self.root: str | None = None
        self.error: Exception | None = None
        self._random = random.Random(seed)
        self._runs: list[_LiveRun] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        self.root = tempfile.mkdtemp(prefix="rlhf-top-demo-")
        try:
            host = Host(socket.gethostname(), os.getpid())
            now = time.monotonic()
            for index, (plan, period) in enumerate(self._plans):
                writer = RunWriter(os.path.join(self.root, plan.name), plan, host)
                writer.start(time.time())
                first = now + (0.5 + 0.3 * index) * period / self.speed
                self._runs.append(_LiveRun(writer, period / self.speed, first))
            self._thread = threading.Thread(target=self._simulate, name="rlhf-top-demo", daemon=True)
            self._thread.start()
        except BaseException:
            self._clean_up()
            raise
        return self.root

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._clean_up()

    def _simulate(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for run in self._runs:
                    if run.ended or run.due > now:
                        continue
                    if run.writer.next_record is None:
                        run.writer.end(time.time())
                        run.ended = True
                    else:
                        run.writer.log_next(time.time())
                        run.due += run.period * self._random.uniform(0.8, 1.2)
                waiting = [run.due for run in self._runs if not run.ended]
                if not waiting:
                    return
                self._stop.wait(max(0.0, min(waiting) - time.monotonic()))
        except Exception as error:  # noqa: BLE001 - a full disk, say: stop writing, keep what went wrong
            self.error = error

    def _clean_up(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for run in self._runs:
            run.writer.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
