"""What the UI shows of a run, copied out of the live model by the reader thread.

Widgets never touch a `Run` (the reader thread keeps changing it): they get `RunSnapshot`s, plain
immutable values with untrusted text already cleaned. The run view, which needs whole series, gets
them copied by a worker under the session lock (run_data.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlhf_tui.core.run import Run
from rlhf_tui.core.series import Series
from rlhf_tui.core.text import block, one_line
from rlhf_tui.rules import Diagnosis, Finding, severity
from rlhf_tui.summary import HEADLINE_ROLES, run_row

SPARK_WIDTH = 10  # the table's sparkline columns
SPARK_SAMPLE = 2000  # a sparkline looks at this many points at most (evenly strided), however long the run
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class FindingView:
    rule_id: str
    severity: str
    title: str
    message: str
    reference: str
    action: str
    first_step: int | None
    last_step: int | None
    active: bool
    value: float | None
    threshold: float | None  # a line on the chart of `threshold_role`
    threshold_role: str | None
    seq: int  # how many times it fired: a higher seq than the user saw is news

    @property
    def where(self) -> str:
        if self.first_step is None:
            return "active" if self.active else "cleared"
        if self.active:
            return f"since step {self.first_step} · active"
        if self.last_step is None or self.last_step == self.first_step:
            return f"step {self.first_step} · cleared"
        return f"steps {self.first_step}–{self.last_step} · cleared"


@dataclass(frozen=True)
class CrashView:
    reason: str
    label: str
    exception: str | None
    traceback: str | None
    last_step: int | None
    time: float | None
    source: str


@dataclass(frozen=True)
class RunSnapshot:
    path: str
    name: str
    trainer: str
    status: str
    severity: str
    lifecycle: str
    step: int | None
    max_steps: int | None
    values: dict[str, float | None]
    last_data_time: float | None
    counts: dict[str, int]
    findings: tuple[FindingView, ...]
    crash: CrashView | None
    notes: tuple[str, ...]
    sparks: dict[str, tuple[float, ...]] = field(default_factory=dict)
    version: int = 0
    loading: bool = False  # its history is still being read: what it shows is its tail, findings wait

    @property
    def has_problem(self) -> bool:
        """High-or-worse: an active finding, or a status, that needs a person."""
        return self.severity in severity.PROBLEM or any(
            f.active and f.severity in severity.PROBLEM for f in self.findings
        )

    def seen_state(self) -> dict[str, int]:
        """rule id -> times fired, to tell later which findings are new to the user."""
        return {f.rule_id: f.seq for f in self.findings}

    def new_findings(self, seen: dict[str, int]) -> set[str]:
        return {f.rule_id for f in self.findings if f.seq > seen.get(f.rule_id, 0)}

    def age(self, now: float) -> float | None:
        return None if self.last_data_time is None else max(0.0, now - self.last_data_time)


def spark_values(series: Series | None, width: int) -> list[float]:
    """Bucket means of at most SPARK_SAMPLE evenly strided finite points: the same cost for a
    thousand steps as for a million (a snapshot is taken on every change of a live run)."""
    if series is None or len(series) == 0:
        return []
    values = series.values
    values = values[:: max(1, len(values) // SPARK_SAMPLE)]
    values = values[np.isfinite(values)]
    if len(values) <= width:
        return values.tolist()
    edges = np.linspace(0, len(values), width + 1).astype(np.int64)
    return (np.add.reduceat(values, edges[:-1]) / np.diff(edges)).tolist()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _finding(finding: Finding) -> FindingView:
    threshold = finding.threshold
    return FindingView(
        rule_id=one_line(str(finding.rule_id)),
        severity=str(finding.severity),
        title=one_line(str(finding.title)),
        message=one_line(str(finding.message or ""), MESSAGE_LIMIT),
        reference=one_line(str(finding.reference or ""), MESSAGE_LIMIT),
        action=one_line(str(finding.action or ""), MESSAGE_LIMIT),
        first_step=finding.first_step,
        last_step=finding.last_step,
        active=bool(finding.active),
        value=_finite(finding.value),
        threshold=_finite(threshold.value) if threshold is not None else None,
        threshold_role=threshold.role if threshold is not None else None,
        seq=int(finding.seq),
    )


def sorted_findings(findings) -> tuple[FindingView, ...]:
    """Most severe first, active before cleared, then in the order they fired."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (severity.rank(f.severity), not f.active, f.first_step or 0, f.seq),
        )
    )


def take_snapshot(run: Run, diagnosis: Diagnosis, now: float) -> RunSnapshot:
    """Copy what the UI shows of `run`; call with the session lock held."""
    row = run_row(run, diagnosis, now)
    crash = run.crash
    sparks = {}
    for role in HEADLINE_ROLES:
        series = run.role(role)
        if series is not None:
            sparks[role] = tuple(spark_values(series, SPARK_WIDTH))
    return RunSnapshot(
        path=run.path,
        name=one_line(run.name),
        trainer=one_line(row.trainer, 24),
        status=one_line(row.status, 60),
        severity=row.severity,
        lifecycle=row.lifecycle,
        step=row.step,
        max_steps=row.max_steps,
        values={role: _finite(value) for role, value in row.values.items()},
        last_data_time=run.last_data_time,
        counts=dict(row.findings),
        findings=sorted_findings(_finding(f) for f in diagnosis.findings),
        crash=None
        if crash is None
        else CrashView(
            reason=one_line(crash.reason, 40),
            label=one_line(crash.label),
            exception=one_line(crash.exception, 500) if crash.exception else None,
            traceback=block(crash.traceback) if crash.traceback else None,
            last_step=crash.last_step,
            time=crash.time,
            source=one_line(crash.source),
        ),
        notes=tuple(one_line(note, 500) for note in run.notes),
        sparks=sparks,
        version=run.version,
        loading=run.loading,
    )
