"""The reader loop behind the TUI: the follower (follow.py) in a thread, its passes turned into batches.

It runs in one thread (a Textual thread worker) and owns the session; the UI thread only ever gets
`RunSnapshot`s. Other workers hold `lock` while they copy a run view (run_data.py) or build a report. Nothing here
imports Textual: `notify` is how the app learns that a batch is waiting, and `take()` hands it over.
A batch collects the passes the UI has not taken yet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rlhf_tui.core.history import start_fork_server
from rlhf_tui.core.remote import RootStatus
from rlhf_tui.core.run import Run
from rlhf_tui.core.text import one_line
from rlhf_tui.events import Event, EventTracker
from rlhf_tui.follow import Follower, LoopSettings, Pass
from rlhf_tui.session import Session
from rlhf_tui.ui.snapshot import RunSnapshot, take_snapshot

__all__ = ["Batch", "LiveLoop", "Loading", "LoopSettings"]


@dataclass
class Batch:
    """What changed since the UI last looked."""

    snapshots: dict[str, RunSnapshot] = field(default_factory=dict)
    notes: list[str] | None = None  # global problems, when they changed
    loaded: bool = False  # the cold start finished
    errors: list[str] = field(default_factory=list)  # loop failures the user should see
    events: list[Event] = field(default_factory=list)  # what to alert the user to, in order
    roots: list[RootStatus] | None = None  # remote roots' connection states, when they changed
    loading: Loading | None = None  # how far reading the runs' histories is, when that changed


@dataclass(frozen=True)
class Loading:
    """How far the cold start is: history bytes read of all there are, and runs still loading."""

    done_bytes: int
    total_bytes: int
    runs: int

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0


class LiveLoop:
    def __init__(self, settings: LoopSettings, notify: Callable[[], None]) -> None:
        start_fork_server()  # now, while standard error is still the terminal's: Textual replaces it
        self.settings = settings
        self.notify = notify
        self.follower = Follower(settings, self._publish, EventTracker())
        self.lock = self.follower.lock
        self._outbox = Batch()
        self._outbox_lock = threading.Lock()
        self._posted = False
        self._notes: list[str] = []
        self._root_labels: list[tuple[str, str]] = []
        self._loading: Loading | None = None

    # --- what the UI thread calls ----------------------------------------------------------

    def take(self) -> Batch:
        with self._outbox_lock:
            batch, self._outbox = self._outbox, Batch()
            self._posted = False
        return batch

    def refresh_now(self) -> None:
        """Re-read everything and look for new runs now (the `r` key)."""
        self.follower.refresh_now()

    def prefer(self, run_paths: list[str]) -> None:
        """Read the histories of the runs on screen first."""
        self.follower.prefer(run_paths)

    @property
    def paused(self) -> bool:
        return self.follower.paused

    def set_paused(self, paused: bool) -> None:
        self.follower.paused = paused
        if not paused:
            self.refresh_now()

    def stop(self) -> None:
        self.follower.stop()

    @property
    def stopped(self) -> bool:
        return self.follower.stopped

    @property
    def session(self) -> Session | None:
        return self.follower.session

    def run_by_path(self, path: str) -> Run | None:
        """The live run (hold `lock` while reading it)."""
        session = self.session
        return session.monitor.runs.get(path) if session is not None else None

    # --- in the reader thread ---------------------------------------------------------------

    def run(self) -> None:
        self.follower.run()

    def _publish(self, done: Pass) -> None:
        now = self.settings.clock()
        snapshots = {}
        notes = None
        roots = None
        loading = None
        session = self.session
        if session is not None:
            with self.lock:
                visible = set(session.runs()) if done.changed else set()
                snapshots = {
                    run.path: take_snapshot(run, session.diagnosis(run), now) for run in done.changed if run in visible
                }
                current = [one_line(note, 500) for note in session.notes]
                still = self._loading is not None and self._loading.runs > 0
                progress = self._progress(session) if done.changed or still else self._loading
            if progress != self._loading:
                self._loading = loading = progress
            if current != self._notes:
                self._notes = notes = current
            statuses = session.monitor.root_status()
            labels = [(status.root, status.label(now)) for status in statuses]
            if labels != self._root_labels:
                self._root_labels, roots = labels, statuses
        nothing = not snapshots and notes is None and roots is None and loading is None
        if nothing and not done.loaded and done.error is None and not done.events:
            return
        with self._outbox_lock:
            self._outbox.snapshots.update(snapshots)
            if notes is not None:
                self._outbox.notes = notes
            if roots is not None:
                self._outbox.roots = roots
            if loading is not None:
                self._outbox.loading = loading
            self._outbox.loaded |= done.loaded
            if done.error is not None:
                self._outbox.errors.append(done.error)
            self._outbox.events.extend(done.events)
            post = not self._posted
            self._posted = True
        if post:
            self.notify()

    @staticmethod
    def _progress(session: Session) -> Loading:
        histories = session.monitor.histories
        runs = sum(1 for run in session.monitor.runs.values() if run.loading) if histories else 0
        return Loading(histories.done_bytes, histories.total_bytes, runs)
