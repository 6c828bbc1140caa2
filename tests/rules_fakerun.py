"""A stand-in for the run model, for the rule tests: Series per role built from Records.

It implements only the protocol the diagnosis engine reads (trainer, facts, role(), generation,
times, lifecycle, crash, last_step, stalled_for), with its own small raw-key -> role table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from rlhf_tui.core.records import Record
from rlhf_tui.core.series import Series
from rlhf_tui.rules import Diagnostics, load_rules

ROLE_KEYS = {
    "loss": ("loss",),
    "reward": ("reward", "objective/scores"),
    "reward_std": ("reward_std",),
    "win_rate": ("rewards/accuracies",),
    "margin": ("rewards/margins",),
    "chosen_reward": ("rewards/chosen",),
    "rejected_reward": ("rewards/rejected",),
    "chosen_logps": ("logps/chosen",),
    "rejected_logps": ("logps/rejected",),
    "kl": ("kl", "objective/kl"),
    "entropy": ("entropy", "policy/entropy_avg"),
    "grad_norm": ("grad_norm",),
    "learning_rate": ("learning_rate", "lr"),
    "clip_ratio": ("clip_ratio/region_mean", "policy/clipfrac_avg"),
    "completion_length": ("completions/mean_length",),
    "clipped_ratio": ("completions/clipped_ratio",),
    "frac_reward_zero_std": ("frac_reward_zero_std",),
    "value_loss": ("loss/value_avg",),
    "policy_loss": ("loss/policy_avg",),
    "approx_kl": ("policy/approxkl_avg",),
    "is_ratio": ("sampling/importance_sampling_ratio/mean", "val/ratio"),
    "step_time": ("step_time",),
}

# Post-Training Toolkit's renamed keys (metrics.jsonl) back to TRL's.
PTT_KEYS = {
    "dpo_loss": "loss",
    "sft_loss": "loss",
    "grpo_loss": "loss",
    "win_rate": "rewards/accuracies",
    "reward_margin": "rewards/margins",
    "rewards_chosen": "rewards/chosen",
    "rewards_rejected": "rewards/rejected",
    "logps_chosen": "logps/chosen",
    "logps_rejected": "logps/rejected",
    "grad_norm": "grad_norm",
    "learning_rate": "learning_rate",
    "kl": "kl",
    "entropy": "entropy",
    "reward_mean": "reward",
    "reward_std": "reward_std",
}

RULES, RULE_ERRORS = load_rules()


class FakeRun:
    def __init__(self, trainer: str, facts: dict | None = None) -> None:
        self.trainer = trainer
        self.facts = dict(facts or {})
        self.generation = 0
        self.times = Series()
        self.lifecycle = "running"
        self.crash = None
        self.last_step: int | None = None
        self.stalled_for: float | None = None
        self._series: dict[str, Series] = {}

    def role(self, name: str) -> Series | None:
        return self._series.get(name)

    def add(self, records: list[Record]) -> None:
        columns: dict[str, tuple[list, list]] = {}
        for record in records:
            prefix = "eval_" if record.phase == "eval" else ""
            for role, keys in ROLE_KEYS.items():
                for key in keys:
                    raw = f"eval_{key}" if prefix else key
                    if raw in record.values:
                        steps, values = columns.setdefault(prefix + role, ([], []))
                        steps.append(record.step)
                        values.append(record.values[raw])
                        break
            if record.phase == "train":
                if record.time is not None:
                    self.times.append(record.step, record.time)
                self.last_step = record.step
        for role, (steps, values) in columns.items():
            self._series.setdefault(role, Series()).extend(np.array(steps, np.int64), np.array(values, np.float64))


def run_of(trainer: str, records: list[Record], facts: dict | None = None) -> FakeRun:
    run = FakeRun(trainer, facts)
    run.add(records)
    return run


def diagnose(trainer: str, records: list[Record], facts: dict | None = None, cuts=()) -> Diagnostics:
    """Diagnose a run fed in pieces cut at the given record indices (all at once without cuts)."""
    run = FakeRun(trainer, facts)
    diagnostics = Diagnostics(RULES)
    start = 0
    for cut in [*sorted(cuts), len(records)]:
        if cut > start:
            run.add(records[start:cut])
            diagnostics.update(run)
            start = cut
    return diagnostics


def records_from_trainer_state(path: Path) -> tuple[list[Record], dict]:
    """Train records and facts from a checkpoint's trainer_state.json (raw TRL keys)."""
    state = json.loads(path.read_text())
    records = []
    for entry in state["log_history"]:
        values = {k: float(v) for k, v in entry.items() if k not in ("step", "epoch") and isinstance(v, (int, float))}
        if any(k.startswith("train_") for k in values):
            continue
        records.append(Record(int(entry["step"]), None, values))
    facts = {
        "max_steps": state["max_steps"],
        "logging_steps": state["logging_steps"],
        "config": {"per_device_train_batch_size": state["train_batch_size"]},
    }
    return records, facts


def records_from_ptt(path: Path) -> list[Record]:
    """Train records from PTT's metrics.jsonl, renamed back to TRL keys, timestamps kept."""
    from datetime import datetime

    records = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "step" not in entry or "metrics" not in entry:
            continue
        values = {PTT_KEYS[k]: float(v) for k, v in entry["metrics"].items() if k in PTT_KEYS and v is not None}
        when = datetime.fromisoformat(entry["timestamp"]).timestamp()
        records.append(Record(int(entry["step"]), when, values))
    return records


def summary(diagnostics: Diagnostics) -> list[tuple]:
    """What must not depend on how the points were split."""
    return [
        (f.rule_id, f.first_step, f.fired_step, f.last_step, f.active, f.seq, f.message,
         None if f.value is None or math.isnan(f.value) else round(f.value, 12))
        for f in diagnostics.findings
    ]
