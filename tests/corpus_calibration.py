"""The calibration corpus (tests/fixtures/corpus): its labels, and each run diagnosed as if watched live.

Shared by tests/test_calibration.py and bench/bench_calibration.py. Every run is opened with the public
API (`open_session([run_dir]); session.load()`), then looked at "as if watching live at the end of
the run": the clock reads the time of the run's last logged step plus `watch.seconds_after_last_step`
(60 s unless the label says otherwise), and the process check answers what it would have answered
then (`watch.process_alive`, False by default: the process had ended, except for a hung run).

The session is given both: a clock, and a process probe (the default asks this machine's kernel
about the pid recorded in run_metadata.json, an answer that depends on the machine and on pid reuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlhf_tui.core.run import Run
from rlhf_tui.rules import Finding, severity
from rlhf_tui.session import open_session

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
LABELS = CORPUS / "labels.yaml"
STATUS_WORDS = ("Crashed", "Killed", "Stalled", "Diverged (NaN)")
SEVERITIES = severity.SEVERITIES
# Problems the catalogue has no rule for yet; labels name them so the calibration can ask for them.
NEW_RULE_IDS = ("preference_overoptimized", "preference_loss_diverged")
DEFAULT_WATCH = {"seconds_after_last_step": 60.0, "process_alive": False}


@dataclass(frozen=True)
class Expectation:
    """One expected problem: a rule (any of `rules`) at `min_severity` or worse, or a status word."""

    rules: tuple[str, ...]
    min_severity: str | None
    status: str | None
    knowable_step: int

    @property
    def name(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        return f"{' or '.join(self.rules)} >= {self.min_severity}"


@dataclass(frozen=True)
class Label:
    run: str
    trainer: str
    what_happened: str
    healthy: bool
    expectations: tuple[Expectation, ...]
    watch: dict[str, Any] = field(default_factory=dict)


def load_labels() -> dict[str, Label]:
    document = yaml.safe_load(LABELS.read_text())
    labels = {}
    for name, entry in document["runs"].items():
        expect = entry["expect"]
        expectations: list[Expectation] = []
        if expect != "healthy":
            for item in expect:
                rules = item.get("rule")
                expectations.append(
                    Expectation(
                        rules=tuple([rules] if isinstance(rules, str) else rules or ()),
                        min_severity=item.get("min_severity"),
                        status=item.get("status"),
                        knowable_step=int(item["knowable_step"]),
                    )
                )
        labels[name] = Label(
            run=name,
            trainer=entry["trainer"],
            what_happened=" ".join(str(entry["what_happened"]).split()),
            healthy=expect == "healthy",
            expectations=tuple(expectations),
            watch={**DEFAULT_WATCH, **(entry.get("watch") or {})},
        )
    return labels


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Observed:
    """What rlhf-top says about one corpus run when watched live at its end."""

    run: Run
    findings: list[Finding]
    status_word: str
    status_severity: str
    trainer: str
    last_step: int | None


def diagnose(label: Label) -> Observed:
    """Load the run, then re-evaluate it at its last step's time + the label's watch delay."""
    run_dir = CORPUS / label.run
    clock = _Clock()  # during the cold start it reads 0, before every timestamp: nothing looks quiet yet
    alive = label.watch["process_alive"]
    session = open_session([str(run_dir)], clock=clock, process_probe=lambda pid, host: alive)
    session.load()
    runs = session.runs()
    assert len(runs) == 1, f"{run_dir} should be one run, found {[r.name for r in runs]}"
    (run,) = runs
    assert run.last_data_time is not None, f"{run_dir}: no timestamped step"
    clock.now = run.last_data_time + float(label.watch["seconds_after_last_step"])
    session.tick()
    diagnosis = session.diagnosis(run)
    return Observed(
        run=run,
        findings=list(diagnosis.findings),
        status_word=diagnosis.status.word,
        status_severity=diagnosis.status.severity,
        trainer=run.trainer,
        last_step=run.last_step,
    )


def at_least(level: str, minimum: str) -> bool:
    return severity.rank(level) <= severity.rank(minimum)


def medium_or_worse(observed: Observed) -> list[Finding]:
    """Findings of medium or worse that ever fired, active or cleared."""
    return [f for f in observed.findings if at_least(f.severity, "medium")]


def matching_findings(observed: Observed, expectation: Expectation) -> list[Finding]:
    return [
        f
        for f in observed.findings
        if f.rule_id in expectation.rules and at_least(f.severity, expectation.min_severity or "low")
    ]


def status_matches(observed: Observed, expectation: Expectation) -> bool:
    word = observed.status_word
    return word == expectation.status or word.startswith(expectation.status + " (")


def met(observed: Observed, expectation: Expectation) -> bool:
    if expectation.status is not None:
        return status_matches(observed, expectation)
    return bool(matching_findings(observed, expectation))


def delay(observed: Observed, expectation: Expectation) -> int | None:
    """Steps from knowable_step to the first flag.

    "Diverged (NaN)" comes from the first critical finding; Crashed, Killed and Stalled can only be
    said once the run has stopped, so they count at its last step.
    """
    if expectation.status is not None:
        if not status_matches(observed, expectation) or observed.last_step is None:
            return None
        critical = [f.first_step for f in observed.findings if f.severity == "critical" and f.first_step is not None]
        flagged = min(critical) if expectation.status == "Diverged (NaN)" and critical else observed.last_step
        return flagged - expectation.knowable_step
    steps = [f.first_step for f in matching_findings(observed, expectation) if f.first_step is not None]
    return min(steps) - expectation.knowable_step if steps else None


def describe_findings(observed: Observed) -> str:
    parts = [
        f"{f.rule_id}:{f.severity}@{f.first_step}{'' if f.active else '(cleared)'}" for f in observed.findings
    ]
    return ", ".join(parts) if parts else "none"
