"""One line of facts per run, shared by the TUI table, `--once` and `--json`."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rlhf_tui.core.run import Run

HEADLINE_ROLES = ("loss", "reward", "win_rate", "kl")


@dataclass
class RunRow:
    name: str
    path: str
    trainer: str
    status: str
    severity: str  # "critical", "high", "medium", "low", "ok": drives colour and sorting
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


SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "ok": 4}


def last_finite(run: Run, role: str) -> float | None:
    series = run.role(role)
    if series is None:
        return None
    value = series.last_finite()
    return value if value is not None and math.isfinite(value) else None


def run_row(run: Run, now: float | None = None) -> RunRow:
    now = now or time.time()
    lifecycle = run.lifecycle(now)
    status = run.status
    word = status.word if status is not None else lifecycle.capitalize()
    severity = status.severity if status is not None else "ok"
    active = [f for f in run.findings if f.active]
    counts: dict[str, int] = {}
    for finding in active:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    top = min(active, key=lambda f: SEVERITY_ORDER.get(f.severity, 9), default=None)
    crash = run.crash
    return RunRow(
        name=run.name,
        path=run.path,
        trainer=run.trainer_label,
        status=word,
        severity=severity,
        lifecycle=lifecycle,
        step=run.last_step,
        max_steps=run.max_steps,
        values={role: last_finite(run, role) for role in HEADLINE_ROLES},
        age=run.quiet_for(now),
        findings=counts,
        top_finding=f"[{top.severity.upper()}] {top.title}" if top is not None else None,
        crash=(crash.exception or crash.label) if crash is not None else None,
        notes=len(run.notes),
        config=dict(run.facts.get("config") or {}),
    )


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_step(step: int | None, max_steps: int | None) -> str:
    if step is None:
        return "-"
    return f"{step}/{max_steps}" if max_steps else str(step)
