"""A run's status in one word, from its lifecycle and its active findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .engine import SEVERITY_RANK, Finding, lifecycle_of


@dataclass(frozen=True)
class Status:
    """What the run table and the report say about a run.

    word: the status, most severe first: "Crashed (<reason>)", "Killed", "Stalled",
    "Diverged (NaN)" (an active critical finding: critical is reserved for non-finite values),
    "Unstable" (an active high finding), "Partially unstable" (medium), "Healthy".
    severity: "critical", "high", "medium" or "ok", for colour and glyph.
    detail: one line saying why (the exception, the stall time, the top finding's title), or "".
    lifecycle: the run's lifecycle as the run model reports it ("running", "finished", ...).
    """

    word: str
    severity: str
    detail: str
    lifecycle: str


def run_status(run: Any, findings: Sequence[Finding]) -> Status:
    lifecycle = lifecycle_of(run)
    active = sorted((f for f in findings if f.active), key=lambda f: SEVERITY_RANK[f.severity])
    top = active[0] if active else None
    crash = run.crash
    if lifecycle == "crashed":
        word = f"Crashed ({crash.reason})" if crash is not None else "Crashed"
        detail = (crash.exception or crash.label) if crash is not None else ""
        return Status(word, "critical", detail or "", lifecycle)
    if lifecycle == "killed":
        return Status("Killed", "critical", crash.label if crash is not None else "", lifecycle)
    if lifecycle == "stalled":
        return Status("Stalled", "high", _stall_detail(run.stalled_for, run.last_step), lifecycle)
    if top is None:
        return Status("Healthy", "ok", "", lifecycle)
    words = {"critical": "Diverged (NaN)", "high": "Unstable", "medium": "Partially unstable", "low": "Healthy"}
    severity = top.severity if top.severity != "low" else "ok"
    return Status(words[top.severity], severity, top.title, lifecycle)


def _stall_detail(seconds: float | None, last_step: int | None) -> str:
    if seconds is None:
        return ""
    minutes = seconds / 60
    duration = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"
    after = f" after step {last_step}" if last_step is not None else ""
    return f"no new step for {duration}{after}"
