"""A monitor with diagnosis attached: what the TUI, `--once`, `--json`, `report` and `watch` open.

The session owns each run's diagnosis: the core's `Run` knows files and metrics, the session keeps a
`Diagnostics` engine and the latest `Diagnosis` (findings, status) per run, and hands the two
together to whoever shows them. Time comes from `clock`, so a caller's clock and the statuses agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from rlhf_tui.core.discover import DEFAULT_MAX_DEPTH
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.remote import RemoteSettings
from rlhf_tui.core.run import ProcessProbe, Run
from rlhf_tui.rules import Diagnosis, Diagnostics, load_rules, run_status, severity


class Session:
    def __init__(
        self,
        roots: Iterable[str],
        max_depth: int = DEFAULT_MAX_DEPTH,
        rules_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        process_probe: ProcessProbe | None = None,
        remote: RemoteSettings | None = None,
    ) -> None:
        self.clock = clock
        self.rules, self.rule_errors = load_rules(rules_dir)
        self.monitor = Monitor(
            roots, max_depth=max_depth, analyze=self._analyze, process_probe=process_probe, remote=remote
        )
        self._engines: dict[Run, Diagnostics] = {}
        self._diagnoses: dict[Run, Diagnosis] = {}

    def diagnosis(self, run: Run) -> Diagnosis:
        """The run's findings and status as of the last read or tick."""
        found = self._diagnoses.get(run)
        return found if found is not None else self._analyze(run)

    def _analyze(self, run: Run) -> Diagnosis:
        now = self.clock()
        if run.loading:  # findings wait for the whole history: a baseline is its start, not its tail
            diagnosis = self._diagnoses[run] = Diagnosis((), run_status(run, (), now, loading=True))
            return diagnosis
        engine = self._engines.get(run)
        if engine is None:
            engine = self._engines[run] = Diagnostics(self.rules)
        engine.update(run, now)
        findings = tuple(engine.findings)
        diagnosis = self._diagnoses[run] = Diagnosis(findings, run_status(run, findings, now))
        return diagnosis

    def load(self) -> None:
        """Discover and read everything there is now (a cold start)."""
        self.monitor.scan()
        self.monitor.check_processes()
        self.monitor.catch_up()
        self.tick()

    def refresh(self, paths: Iterable[str] | None = None, rescan: bool = False) -> set[Run]:
        """Read what changed (all files when `paths` is None); returns the runs that changed."""
        changed = self.monitor.scan() if rescan else set()
        changed |= self.monitor.poll(paths)
        for run in changed:
            if run not in self._diagnoses:
                self._analyze(run)
        return changed

    def tick(self) -> set[Run]:
        """Time passing changes status too (stalled, killed): re-check without new data."""
        self.monitor.check_processes()
        changed = set()
        for run in self.monitor.runs.values():
            before = self._diagnoses.get(run)
            after = self._analyze(run)
            if before is None or after.status != before.status:
                changed.add(run)
        return changed

    def runs(self) -> list[Run]:
        return self.monitor.visible_runs()

    @property
    def notes(self) -> list[str]:
        return self.rule_errors + self.monitor.notes

    def has_problems(self) -> bool:
        return any(self.diagnosis(run).status.severity in severity.PROBLEM for run in self.runs())

    def close(self) -> None:
        """Stop following (remote roots have threads of their own)."""
        self.monitor.close()


def open_session(
    roots: Iterable[str],
    max_depth: int = DEFAULT_MAX_DEPTH,
    rules_dir: Path | None = None,
    clock: Callable[[], float] = time.time,
    process_probe: ProcessProbe | None = None,
    remote: RemoteSettings | None = None,
) -> Session:
    """A session over `roots`; `clock` and `process_probe` are for callers that replay the past,
    `remote` says how roots on other machines are reached."""
    return Session(roots, max_depth, rules_dir, clock, process_probe, remote)
