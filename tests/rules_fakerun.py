"""A stand-in for the run model, for the rule tests: raw-key series built from Records.

It offers exactly what diagnosis reads (`rlhf_tui.rules.RunView`; mypy checks that it does, see
test_types.py), resolves roles with the core's alias tables, and lets a test set the lifecycle,
crash and quiet time directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlhf_tui.core.metrics import resolve_roles
from rlhf_tui.core.records import EVAL_PREFIX, Crash, Record, rows, split_eval
from rlhf_tui.core.series import Series
from rlhf_tui.core.sources.ptt import PttMetricsReader
from rlhf_tui.core.sources.trainer_state import read_trainer_state
from rlhf_tui.rules import Diagnostics, RunView, load_rules

RULES, RULE_ERRORS = load_rules()
NOW = 2_000_000_000.0  # the clock diagnosis is given; the stand-in reports its lifecycle regardless


class FakeRun:
    def __init__(self, trainer: str, facts: dict[str, object] | None = None) -> None:
        self.trainer = trainer
        self.facts: dict[str, object] = dict(facts or {})
        self.generation = 0
        self.times = Series()
        self.crash: Crash | None = None
        self.last_step: int | None = None
        self.state = "running"  # what lifecycle() reports
        self.quiet: float | None = None  # what quiet_for() reports
        self._series: dict[str, Series] = {}
        self._roles: dict[str, str] = {}

    def role(self, role: str) -> Series | None:
        key = self._roles.get(role)
        return self._series.get(key) if key is not None else None

    def lifecycle(self, now: float) -> str:
        return self.state

    def quiet_for(self, now: float) -> float | None:
        return self.quiet

    def add(self, records: list[Record]) -> None:
        columns: dict[str, tuple[list[int], list[float]]] = {}
        for record in records:
            logged = record.values
            if record.phase == "eval":  # as logged (eval_loss), stored as the run model does (eval_loss)
                logged = {EVAL_PREFIX + key: value for key, value in split_eval(logged)[1].items()}
            for key, value in logged.items():
                column = columns.setdefault(key, ([], []))
                column[0].append(record.step)
                column[1].append(value)
            if record.phase == "train":
                if record.time is not None:
                    self.times.append(record.step, record.time)
                self.last_step = record.step
        for key, (steps, values) in columns.items():
            self._series.setdefault(key, Series()).extend(np.array(steps, np.int64), np.array(values, np.float64))
        self._roles = resolve_roles(self.trainer, self._series)


def run_of(trainer: str, records: list[Record], facts: dict[str, object] | None = None) -> FakeRun:
    run = FakeRun(trainer, facts)
    run.add(records)
    return run


def diagnose(trainer: str, records: list[Record], facts: dict[str, object] | None = None, cuts=()) -> Diagnostics:
    """Diagnose a run fed in pieces cut at the given record indices (all at once without cuts)."""
    run = FakeRun(trainer, facts)
    diagnostics = Diagnostics(RULES)
    start = 0
    for cut in [*sorted(cuts), len(records)]:
        if cut > start:
            run.add(records[start:cut])
            diagnostics.update(run, NOW)
            start = cut
    return diagnostics


def records_from_trainer_state(path: Path) -> tuple[list[Record], dict[str, object]]:
    """Train records and facts from a checkpoint's trainer_state.json, read by the core's reader."""
    update = read_trainer_state(path.read_bytes(), path.name)
    return [r for r in rows(update.records) if r.phase == "train"], dict(update.facts)


def records_from_ptt(path: Path) -> list[Record]:
    """Train records from PTT's metrics.jsonl (its renamed keys, timestamps kept), read by the core's reader."""
    update = PttMetricsReader(path.name).feed(path.read_bytes())
    return [r for r in rows(update.records) if r.phase == "train"]


def summary(diagnostics: Diagnostics) -> list[tuple]:
    """What must not depend on how the points were split."""
    return [
        (f.rule_id, f.first_step, f.fired_step, f.last_step, f.active, f.seq, f.message,
         None if f.value is None or math.isnan(f.value) else round(f.value, 12))
        for f in diagnostics.findings
    ]


if TYPE_CHECKING:  # mypy (test_types.py) checks that the stand-in offers everything diagnosis reads
    _stand_in: RunView = FakeRun("dpo")
