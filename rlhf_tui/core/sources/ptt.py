"""Post-Training Toolkit run directories (and our own callback's, which shares the format).

`metrics.jsonl`: a header `{"type": "header", "trainer_type": ...}`, records
`{"step", "timestamp", "metrics": {...}}`, a footer `{"type": "footer", "status": "completed"}`.
Our callback adds `"writer": "rlhf-top"` to the header, `"phase": "eval"` on eval records and a
`{"type": "summary"}` line for the end-of-run averages.

PTT quirk handled here: a finished run has a second record at the last step holding only
`<x>_loss` = the run-average `train_loss`. It is a summary, not a step, so it goes to
`facts["summary"]` and never becomes "the last loss".

Whole-file documents: `postmortem.json`, `critical_failure.json`, `run_metadata*.json`.
"""

from __future__ import annotations

import math
from typing import Any

from rlhf_tui.core.config import facts_from_training_args, flat_config
from rlhf_tui.core.metrics import normalize_trainer
from rlhf_tui.core.records import Block, Crash, Entry, Update
from rlhf_tui.core.sources.jsonl import JsonlReader, parse_json_line, parse_time

_EXIT_REASONS = {
    "exception": ("exception", "Python exception"),
    "oom": ("oom", "CUDA out of memory"),
    "cuda_oom": ("oom", "CUDA out of memory"),
    "sigterm": ("sigterm", "terminated (SIGTERM)"),
    "sigint": ("sigint", "interrupted (SIGINT)"),
    "keyboard_interrupt": ("sigint", "interrupted (SIGINT)"),
    "sigkill": ("sigkill", "killed (SIGKILL)"),
    "nccl": ("nccl", "NCCL error"),
    "nccl_timeout": ("nccl", "NCCL timeout"),
    "critical_failure": ("exception", "critical failure"),
}


class PttMetricsReader(JsonlReader):
    writer = "ptt"

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._last_step: int | None = None

    def feed(self, data: bytes) -> Update:
        update = super().feed(data)
        if update.records:
            self._move_summary_rows(update)
        return update

    def handle(self, obj: dict[str, Any], update: Update) -> None:
        kind = obj.get("type")
        if kind is None:
            super().handle(obj, update)
            return
        self.seen_records = True
        if kind == "header":
            writer = obj.get("writer")
            update.facts["writer"] = writer if writer == "rlhf-top" else "ptt"
            trainer = normalize_trainer(obj.get("trainer_type"))
            if trainer:
                update.facts["trainer"] = trainer
                update.facts["trainer_evidence"] = "header"
            start = parse_time(obj.get("timestamp"))
            if start is not None:
                update.facts.setdefault("start_time", start)
        elif kind == "footer":
            if obj.get("status") in ("completed", "finished", "success"):
                update.finished = True
            update.facts["end_time"] = parse_time(obj.get("timestamp"))
        elif kind == "summary" and isinstance(obj.get("metrics"), dict):
            update.facts["summary"] = _finite_numbers(obj["metrics"])
        elif kind == "resume":
            update.finished = False
            update.crash = None
            update.facts["resumed_at"] = obj.get("from_step")

    def _move_summary_rows(self, update: Update) -> None:
        """A second train record at the same step holding one `<x>_loss` is the run average."""
        kept: list[Entry] = []
        last_step = self._last_step
        for record in _with_possible_summaries_written_out(update.records, last_step):
            if isinstance(record, Block):
                last_step = int(record.steps[-1])
            elif record.phase == "train":
                values = record.values
                if record.step == last_step and len(values) == 1:
                    ((key, value),) = values.items()
                    if key.endswith("loss") and type(value) in (int, float):
                        update.facts["summary"] = {"train_loss": value}
                        continue
                last_step = record.step
            kept.append(record)
        self._last_step = last_step
        if len(kept) != len(update.records):
            update.records[:] = kept


def _with_possible_summaries_written_out(entries: list[Entry], last_step: int | None) -> list[Entry]:
    """Steps rise within a block, so only its first row can repeat the step before it, and only a
    block of one `<x>_loss` key can hold a summary row: such a block is written out as records."""
    out: list[Entry] = []
    for entry in entries:
        if isinstance(entry, Block):
            if len(entry.keys) == 1 and entry.keys[0].endswith("loss") and int(entry.steps[0]) == last_step:
                out.extend(entry.rows())
            else:
                out.append(entry)
            last_step = int(entry.steps[-1])
        else:
            out.append(entry)
            if entry.phase == "train":
                last_step = entry.step
    return out


def _finite_numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if type(v) in (int, float) and math.isfinite(v)
    }


def _load_object(data: bytes, what: str, update: Update) -> dict[str, Any] | None:
    if not data.strip():
        update.notes.append(f"{what}: empty file")
        return None
    try:
        obj = parse_json_line(data)
    except (ValueError, RecursionError):
        update.notes.append(f"{what}: not valid JSON")
        return None
    if not isinstance(obj, dict):
        update.notes.append(f"{what}: not a JSON object")
        return None
    return obj


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def read_postmortem(data: bytes, name: str = "postmortem.json") -> Update:
    update = Update(replace=True)
    obj = _load_object(data, name, update)
    if obj is None:
        return update
    raw_reason = str(obj.get("exit_reason") or "exception").lower()
    traceback = _text(obj.get("traceback"))
    exception = _text(obj.get("exception")) or _last_line(traceback)
    last_step = obj.get("last_step") if type(obj.get("last_step")) is int else None
    if raw_reason in ("completed", "success", "normal"):
        update.finished = True
        return update
    reason, label = _EXIT_REASONS.get(raw_reason, ("exception", raw_reason))
    if obj.get("cuda_error") or (exception and "out of memory" in exception.lower()):
        reason, label = "oom", "CUDA out of memory"
    update.crash = Crash(
        reason=reason,
        label=label,
        exception=exception,
        traceback=traceback,
        last_step=last_step,
        time=parse_time(obj.get("timestamp")),
        source=name,
    )
    environment = obj.get("environment")
    if isinstance(environment, dict):
        _host_facts(environment, update)
    return update


def read_critical_failure(data: bytes, name: str = "critical_failure.json") -> Update:
    """PTT writes this when a critical metric failure (NaN loss, ...) stops or flags the run."""
    update = Update(replace=True)
    obj = _load_object(data, name, update)
    if obj is None:
        return update
    message = _text(obj.get("message")) or _text(obj.get("reason")) or _text(obj.get("error"))
    update.notes.append(f"PTT critical failure: {message or 'no message'}")
    return update


def read_metadata(data: bytes, name: str = "run_metadata.json") -> Update:
    update = Update(replace=True)
    obj = _load_object(data, name, update)
    if obj is None:
        return update
    facts = update.facts
    trainer = normalize_trainer(obj.get("trainer_type") or obj.get("trainer"))
    if trainer:
        facts["trainer"] = trainer
        facts["trainer_evidence"] = "config class" if obj.get("config_class") else "header"
    model = _text(obj.get("model_name"))
    if model:
        facts["model_name"] = model
    start = parse_time(obj.get("start_time"))
    if start is not None:
        facts["start_time"] = start
    if obj.get("status") in ("completed", "finished"):
        update.finished = True
    args = obj.get("training_args")
    config = obj.get("config")
    if not isinstance(args, dict) and isinstance(config, dict):
        args = config.get("training_args")
    if isinstance(args, dict):
        facts["config"] = flat_config(args)
        from_args = facts_from_training_args(args)
        if "trainer" in facts:  # the header or the config class named it already, more surely
            from_args.pop("trainer", None)
            from_args.pop("trainer_evidence", None)
        facts.update(from_args)
    for key in ("loss_type", "beta", "max_steps"):
        if key in obj and obj[key] is not None and key not in facts:
            facts[key] = obj[key]
    loss_type = facts.get("loss_type")
    if isinstance(loss_type, list):  # TRL 1.x: DPOConfig.loss_type == ["sigmoid"]
        facts["loss_type"] = loss_type[0] if len(loss_type) == 1 and isinstance(loss_type[0], str) else None
    _host_facts(obj, update)
    environment = obj.get("environment")
    if isinstance(environment, dict):
        _host_facts(environment, update)
    return update


def _host_facts(obj: dict[str, Any], update: Update) -> None:
    host = obj.get("hostname") or obj.get("host")
    pid = obj.get("pid")
    if isinstance(host, str):
        update.facts["host"] = host
    if type(pid) is int:
        update.facts["pid"] = pid
