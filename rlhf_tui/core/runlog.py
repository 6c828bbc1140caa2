"""The run-log format: Post-Training Toolkit's `metrics.jsonl` and the documents beside it, which
rlhf-top's `RunLogger` writes too. Defined here once: these functions build the lines that RunLogger,
the demo, the sample runs, tests and benchmarks write; `sources/ptt.py` reads them.

`metrics.jsonl` holds one JSON object per line (NaN and Infinity as JSON's extended tokens, as PTT
writes them):

- a header: `{"type": "header", "schema_version", "run_id", "trainer_type", "timestamp"}`, with
  `"writer": "rlhf-top"` when RunLogger wrote it;
- a logged step: `{"step", "timestamp", "metrics": {...}}`; RunLogger marks an evaluation with
  `"phase": "eval"` and keeps TRL's raw keys, PTT renames keys and drops the ones it does not know;
- RunLogger's end-of-run averages: `{"type": "summary", "timestamp", "metrics"}` (PTT instead
  repeats the last step with the run-average loss alone);
- a resumed session: `{"type": "resume", "from_step", "timestamp"}`;
- a footer once training completed: `{"type": "footer", "run_id", "status", "total_steps", "timestamp"}`.

`postmortem.json`, when a run died: `{"exit_reason", "exit_code", "last_step", "timestamp", "traceback"}`,
with `"exception"` (RunLogger) or PTT's `last_metrics`, `recent_events`, `environment`, `cuda_error`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

SCHEMA_VERSION = "1.0"
OWN_WRITER = "rlhf-top"
METRICS_FILE = "metrics.jsonl"
METADATA_FILE = "run_metadata.json"  # also run_metadata_start.json and run_metadata_final.json (PTT)
POSTMORTEM_FILE = "postmortem.json"
CRITICAL_FAILURE_FILE = "critical_failure.json"


def header(trainer: str, run_id: str, timestamp: str, writer: str | None = None, **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"type": "header", "schema_version": SCHEMA_VERSION}
    if writer is not None:
        line["writer"] = writer
    return {**line, "run_id": run_id, "trainer_type": trainer, **extra, "timestamp": timestamp}


def step(step: int, timestamp: str | float, metrics: Mapping[str, Any], phase: str = "train") -> dict[str, Any]:
    line: dict[str, Any] = {"step": step, "timestamp": timestamp}
    if phase == "eval":
        line["phase"] = "eval"
    line["metrics"] = metrics
    return line


def summary(metrics: Mapping[str, Any], timestamp: str) -> dict[str, Any]:
    return {"type": "summary", "timestamp": timestamp, "metrics": metrics}


def resume(from_step: int, timestamp: str) -> dict[str, Any]:
    return {"type": "resume", "from_step": from_step, "timestamp": timestamp}


def footer(run_id: str, total_steps: int, timestamp: str) -> dict[str, Any]:
    return {"type": "footer", "run_id": run_id, "status": "completed", "total_steps": total_steps, "timestamp": timestamp}


def postmortem(
    exit_reason: str, exit_code: int | None, last_step: int, timestamp: str, traceback: str, **extra: Any
) -> dict[str, Any]:
    return {
        "exit_reason": exit_reason,
        "exit_code": exit_code,
        "last_step": last_step,
        "timestamp": timestamp,
        "traceback": traceback,
        **extra,
    }


def line(obj: Mapping[str, Any], default: Callable[[Any], Any] | None = None) -> str:
    """One line of `metrics.jsonl`, newline included."""
    return json.dumps(obj, default=default) + "\n"
