"""What is worth telling someone who is not looking: events from changes of a run's diagnosis.

An event is a transition: a run that becomes crashed, killed, stalled (or stopped short of its
max_steps) or finished, or a HIGH or CRITICAL finding that becomes active (a critical finding is a
NaN/Inf: the run diverged). Findings of run-scope rules (the `stalled` rule) restate the lifecycle
and make no event of their own. Nothing repeats while it stays so; a finding that clears and fires
again is news again. `EventTracker` remembers, per run, what it last saw; that memory is plain data, so
`rlhf-top watch` keeps it across restarts (watch_state.py) and the TUI starts afresh.

Both `rlhf-top watch` and the TUI get their events from here, through the follower (follow.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from rlhf_tui.core.run import Run
from rlhf_tui.core.text import one_line
from rlhf_tui.rules import Diagnosis, Rule, severity

# name -> what it means, in the order of --help
KINDS = {
    "crash": "the run crashed (exception, CUDA OOM, NCCL, SLURM time limit, ...)",
    "killed": "its process vanished without a word (SIGKILL, node down)",
    "stall": "no new step for much longer than steps take, or stopped short of max_steps",
    "diverged": "a critical finding: NaN or Inf in the loss, rewards or gradients",
    "high": "a new high finding (DPO loss parked at ln 2, reward variance gone, KL running away, ...)",
    "finish": "the run finished",
}
DETAIL_LIMIT = 500
_CONDITION_EVENTS = {"crashed": "crash", "killed": "killed", "stalled": "stall", "finished": "finish"}
_FRESH = {"condition": "running", "problems": []}  # what a run new since the last look was before


@dataclass(frozen=True)
class Event:
    """One thing that happened to one run, with what a message about it says (text already cleaned)."""

    kind: str
    path: str
    name: str
    host: str
    trainer: str
    step: int | None
    max_steps: int | None
    status: str
    what: str  # what happened, in a few words: the status, or the finding's title
    detail: str  # the finding or the exception, one line
    time: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(**data)


def _condition(diagnosis: Diagnosis) -> str:
    """The run's lifecycle, with a run that stopped short of its max_steps counted as stalled."""
    status = diagnosis.status
    if status.lifecycle == "stopped" and status.word == "Stopped early":
        return "stalled"
    return status.lifecycle


class EventTracker:
    """Turns each run's diagnosis into events by comparing it with the last one it saw.

    memory: run path -> {"condition": ..., "problems": [rule ids]}, as returned by `memory`; None when
    there is no earlier look, and then what is there at the start is taken as it is.
    kinds: which events to report (all of KINDS by default); the others are still remembered.
    """

    def __init__(self, memory: dict[str, dict[str, Any]] | None = None, kinds: Iterable[str] = KINDS) -> None:
        self._first_look = memory is None
        self._memory: dict[str, dict[str, Any]] = dict(memory or {})
        self.kinds = frozenset(kinds)
        self.changed = False  # the memory changed since `memory` was last read
        self.host = socket.gethostname()
        self._restating: frozenset[str] = frozenset()

    @property
    def memory(self) -> dict[str, dict[str, Any]]:
        self.changed = False
        return {path: dict(seen) for path, seen in self._memory.items()}

    def start(self, runs: Iterable[tuple[Run, Diagnosis]], now: float, rules: Iterable[Rule]) -> list[Event]:
        """The first look, once every run has been read: runs remembered from an earlier look are
        compared with that; runs it has not seen are news unless there is no earlier look at all.
        `rules` are the session's, to know the run-scope ones."""
        self._restating = frozenset(rule.id for rule in rules if rule.scope == "run")
        events = []
        for run, diagnosis in runs:
            announce = not self._first_look or run.path in self._memory
            events += self._observe(run, diagnosis, now, announce)
        self._first_look = False
        return events

    def update(self, runs: Iterable[tuple[Run, Diagnosis]], now: float) -> list[Event]:
        """Events of the runs that changed, in order (their findings by when they fired, then how the run ended)."""
        events = []
        for run, diagnosis in runs:
            events += self._observe(run, diagnosis, now, announce=True)
        return events

    def _observe(self, run: Run, diagnosis: Diagnosis, now: float, announce: bool) -> list[Event]:
        state = _condition(diagnosis)
        if state == "gone":
            return []  # a run that comes back is the same run: it keeps what was said of it
        problems = {
            f.rule_id: f for f in diagnosis.active if f.severity in severity.PROBLEM and f.rule_id not in self._restating
        }
        before = self._memory.get(run.path, _FRESH)
        seen = {"condition": state, "problems": sorted(problems)}
        if seen != before or run.path not in self._memory:
            self._memory[run.path] = seen
            self.changed = True
        if not announce:
            return []
        events = []
        new = [f for rule_id, f in problems.items() if rule_id not in before["problems"]]
        for finding in sorted(new, key=lambda f: (f.first_step or 0, f.seq)):
            kind = "diverged" if finding.severity == "critical" else "high"
            detail = f"[{severity.LABELS[finding.severity]}] {finding.title}: {finding.message}"
            events.append(self._event(kind, run, diagnosis, finding.title, detail, now))
        ended = _CONDITION_EVENTS.get(state)
        if ended is not None and state != before["condition"]:
            what = "Finished" if ended == "finish" else diagnosis.status.word
            events.append(self._event(ended, run, diagnosis, what, self._detail(ended, diagnosis), now))
        return [event for event in events if event.kind in self.kinds]

    @staticmethod
    def _detail(kind: str, diagnosis: Diagnosis) -> str:
        if kind == "finish":
            worth = sorted(
                (f for f in diagnosis.active if severity.rank(f.severity) <= severity.rank("medium")),
                key=lambda f: severity.rank(f.severity),
            )
            if not worth:
                return "finished with no medium or worse finding active"
            worst = worth[0]
            return f"finished with {len(worth)} medium or worse finding(s) active, the worst: [{severity.LABELS[worst.severity]}] {worst.title}"
        if kind == "killed" and not diagnosis.status.detail:
            return "its process is gone and it left no end marker"
        return diagnosis.status.detail

    def _event(self, kind: str, run: Run, diagnosis: Diagnosis, what: str, detail: str, now: float) -> Event:
        host = run.facts.get("host")
        return Event(
            kind=kind,
            path=run.path,
            name=one_line(run.name),
            host=one_line(host) if isinstance(host, str) and host else self.host,
            trainer=one_line(run.trainer_label, 40),
            step=run.last_step,
            max_steps=run.max_steps,
            status=one_line(diagnosis.status.word, 60),
            what=one_line(what, 120),
            detail=one_line(detail or "", DETAIL_LIMIT),
            time=now,
        )
