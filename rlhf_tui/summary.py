"""One line of facts per run, shared by the TUI table, `--once` and `--json`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rlhf_tui.core.run import Run
from rlhf_tui.rules import Diagnosis, severity

HEADLINE_ROLES = ("loss", "reward", "win_rate", "kl")


@dataclass
class RunRow:
    name: str
    path: str
    trainer: str
    status: str
    severity: str  # "critical", "high", "medium" or "ok": drives colour and sorting
    lifecycle: str
    step: int | None
    max_steps: int | None
    values: dict[str, float | None]  # last finite value per headline role
    age: float | None  # seconds since the last new data
    findings: dict[str, int] = field(default_factory=dict)  # active findings per severity
    top_finding: str | None = None
    crash: str | None = None
    notes: int = 0
    config: dict[str, Any] = field(default_factory=dict)  # the run's flat config, from all its sources

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def last_finite(run: Run, role: str) -> float | None:
    series = run.role(role)
    if series is None:
        return None
    value = series.last_finite()
    return value if value is not None and math.isfinite(value) else None


def run_row(run: Run, diagnosis: Diagnosis, now: float) -> RunRow:
    status = diagnosis.status
    active = diagnosis.active
    counts: dict[str, int] = {}
    for finding in active:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    top = min(active, key=lambda f: severity.rank(f.severity), default=None)
    crash = run.crash
    return RunRow(
        name=run.name,
        path=run.path,
        trainer=run.trainer_label,
        status=status.word,
        severity=status.severity,
        lifecycle=status.lifecycle,
        step=run.last_step,
        max_steps=run.max_steps,
        values={role: last_finite(run, role) for role in HEADLINE_ROLES},
        age=run.quiet_for(now),
        findings=counts,
        top_finding=f"[{severity.LABELS[top.severity]}] {top.title}" if top is not None else None,
        crash=(crash.exception or crash.label) if crash is not None else None,
        notes=len(run.notes),
        config=dict(run.facts.get("config") or {}),
    )
