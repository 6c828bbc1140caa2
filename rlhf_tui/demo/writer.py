"""One planned run written to disk: `RunWriter` step by step (the live demo), `write_run` at once
(the static `sample_runs/`)."""

from __future__ import annotations

import math
import os

from rlhf_tui.core.records import Record
from rlhf_tui.demo.checkpoints import write_checkpoint
from rlhf_tui.demo.console import ConsoleLog
from rlhf_tui.demo.plans import CHECKPOINTS, CONSOLE, END_DELAY, PTT, RLHF_TOP, Death, Host, RunPlan, as_logged
from rlhf_tui.demo.run_logs import PttFiles, RunLoggerFiles

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


