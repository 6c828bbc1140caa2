"""A monitor with diagnosis attached: what the TUI, `--once`, `--json` and `report` all open."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rlhf_tui.core.discover import DEFAULT_MAX_DEPTH
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.run import Run
from rlhf_tui.rules import Diagnostics, load_rules, run_status

PROBLEM_SEVERITIES = frozenset({"critical", "high"})


class Session:
    def __init__(self, roots: Iterable[str], max_depth: int, rules_dir: Path | None) -> None:
        self.rules, self.rule_errors = load_rules(rules_dir)
        self.monitor = Monitor(roots, max_depth=max_depth, analyze=self.analyze)

    def analyze(self, run: Run) -> None:
        if run.diagnostics is None:
            run.diagnostics = Diagnostics(self.rules)
        run.diagnostics.update(run)
        run.findings = run.diagnostics.findings
        status = run_status(run, run.findings)
        if status != run.status:
            run.status = status
            run.touch()

    def load(self) -> None:
        """Discover and read everything there is now (a cold start)."""
        self.monitor.scan()
        self.monitor.check_processes()
        self.monitor.catch_up()
        self.tick()

    def refresh(self, paths: Iterable[str] | None = None, rescan: bool = False) -> set[Run]:
        changed = self.monitor.scan() if rescan else set()
        changed |= self.monitor.poll(paths)
        for run in changed:
            if run.diagnostics is None:
                self.analyze(run)
        return changed

    def tick(self) -> set[Run]:
        """Time passing changes status too (stalled, killed): re-check without new data."""
        self.monitor.check_processes()
        changed = set()
        for run in self.monitor.runs.values():
            before = run.version
            self.analyze(run)
            if run.version != before:
                changed.add(run)
        return changed

    def runs(self) -> list[Run]:
        return self.monitor.visible_runs()

    @property
    def notes(self) -> list[str]:
        return self.rule_errors + self.monitor.notes

    def has_problems(self) -> bool:
        return any(
            run.status is not None and run.status.severity in PROBLEM_SEVERITIES for run in self.runs()
        )


def open_session(
    roots: Iterable[str], max_depth: int = DEFAULT_MAX_DEPTH, rules_dir: Path | None = None
) -> Session:
    return Session(roots, max_depth, rules_dir)
