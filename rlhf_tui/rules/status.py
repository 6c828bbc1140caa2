"""A run's status in one word, from its lifecycle and its active findings; and the run's Diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rlhf_tui.core.display import format_duration
from rlhf_tui.rules import severity
from rlhf_tui.rules.engine import Finding
from rlhf_tui.rules.view import RunView


@dataclass(frozen=True)
class Status:
    """What the run table and the report say about a run.

    word: the status, most severe first: "Crashed (<reason>)", "Killed", "Stalled", "Stopped early"
    (quiet for a day short of a known max_steps, no end marker), "Diverged (NaN)" (an active
    critical finding: critical is reserved for non-finite values), "Unstable" (an active high
    finding), "Partially unstable" (medium), "Stopped" (quiet for a day, no end marker, no target
    length known: nothing says it failed), "Healthy"; "Loading" instead of the last two while the
    run's history is still being read (its findings wait for all of it).
    severity: "critical", "high", "medium" or "ok", for colour and glyph (low findings never colour).
    detail: one line saying why (the exception, the stall time, the top finding's title), or "".
    lifecycle: the run's lifecycle as the run model reports it ("running", "finished", ...).
    """

    word: str
    severity: str
    detail: str
    lifecycle: str


@dataclass(frozen=True)
class Diagnosis:
    """What diagnosis says of one run: every finding (active first, cleared ones kept) and its status."""

    findings: tuple[Finding, ...]
    status: Status

    @property
    def active(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.active]


_FINDING_WORDS = {"critical": "Diverged (NaN)", "high": "Unstable", "medium": "Partially unstable"}
LOADING = "Loading"


def run_status(run: RunView, findings: Sequence[Finding], now: float, loading: bool = False) -> Status:
    """`loading`: part of the run's history is still being read, so no finding can be trusted yet."""
    lifecycle = run.lifecycle(now)
    crash = run.crash
    if lifecycle == "crashed":
        word = f"Crashed ({crash.reason})" if crash is not None else "Crashed"
        detail = (crash.exception or crash.label) if crash is not None else ""
        return Status(word, "critical", detail or "", lifecycle)
    if lifecycle == "killed":
        return Status("Killed", "critical", crash.label if crash is not None else "", lifecycle)
    if lifecycle == "stalled":
        return Status("Stalled", "high", _stall_detail(run.quiet_for(now), run.last_step), lifecycle)
    max_steps = run.facts.get("max_steps")
    stopped_short = type(max_steps) is int and run.last_step is not None and run.last_step < max_steps
    if lifecycle == "stopped" and stopped_short:
        detail = f"stopped at step {run.last_step} of {max_steps}, no end marker: it died or was killed"
        return Status("Stopped early", "high", detail, lifecycle)
    active = sorted((f for f in findings if f.active and f.severity in _FINDING_WORDS), key=lambda f: severity.rank(f.severity))
    if not active and loading:
        return Status(LOADING, severity.OK, "its history is being read; findings follow", lifecycle)
    if not active and lifecycle == "stopped":
        quiet = run.quiet_for(now)
        ago = f"{format_duration(quiet)} ago " if quiet is not None else ""
        return Status("Stopped", severity.OK, f"stopped {ago}(no end marker)", lifecycle)
    if not active:
        return Status("Healthy", severity.OK, "", lifecycle)
    top = active[0]
    return Status(_FINDING_WORDS[top.severity], top.severity, top.title, lifecycle)


def _stall_detail(seconds: float | None, last_step: int | None) -> str:
    if seconds is None:
        return ""
    after = f" after step {last_step}" if last_step is not None else ""
    return f"no new step for {format_duration(seconds)}{after}"
