"""Post-Training Toolkit's `DiagnosticsCallback` files (its renamed keys, the run-average loss row,
`run_metadata*.json`, `postmortem.json`) and rlhf-top's own `RunLogger` files (raw TRL keys)."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from typing import Any

from rlhf_tui.core import runlog
from rlhf_tui.core.metrics import trainer_label
from rlhf_tui.demo.files import AppendedFile, write_document
from rlhf_tui.demo.plans import VERSIONS, Death, Host, RunPlan, iso_time

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
def ptt_metrics(trainer: str, logs: dict[str, float]) -> dict[str, float]:
    """A log dict as PTT records it: its names, rounded to 6 decimals, unknown keys dropped."""
    return {name: round(float(logs[key]), 6) for name, key in PTT_KEYS[trainer] if key in logs}



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
        header = runlog.header(plan.trainer, self._run_id, iso_time(start), config_hash=config_hash)
        self._metrics.write_json_line(header)

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
            runlog.postmortem(
                death.exit_reason,
                None,
                last_step,
                iso_time(now),
                death.traceback,
                last_metrics=self._last_metrics,
                recent_events=[f"[{iso_time(now)}] exception: {event}"],
                environment=_environment(self._host),
                cuda_error=message if death.exit_reason == "oom" else None,
            ),
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
        header = runlog.header(plan.trainer, self._run_id, iso_time(start), writer=runlog.OWN_WRITER)
        self._metrics.write_json_line(header)
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
            runlog.postmortem(
                death.exit_reason, None, last_step, iso_time(now), death.traceback, exception=death.exception
            ),
        )
        self._metadata.update(status="crashed", end_time=iso_time(now))
        self._write_metadata()

    def close(self) -> None:
        self._metrics.close()

    def _write_metadata(self) -> None:
        write_document(os.path.join(self._directory, runlog.METADATA_FILE), self._metadata)


