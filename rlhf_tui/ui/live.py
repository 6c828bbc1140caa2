"""The reader loop behind the TUI: watch files, read what changed, hand snapshots to the UI.

It runs in one thread (a Textual thread worker) and owns the session; the UI thread only ever gets
`RunSnapshot`s, or holds `lock` while it copies series for a chart or builds a report. Nothing here
imports Textual: `notify` is how the app learns that a batch is waiting, and `take()` hands it over.
Batches coalesce: however fast runs log, the UI gets at most one batch per `FRAME_SECONDS`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_tui.core.discover import classify
from rlhf_tui.core.remote import POLL_SECONDS, RemoteSettings, RootStatus
from rlhf_tui.core.run import Run
from rlhf_tui.session import Session, open_session
from rlhf_tui.core.watch import ChangeFeed
from rlhf_tui.ui.snapshot import RunSnapshot, take_snapshot
from rlhf_tui.core.text import one_line

FRAME_SECONDS = 0.25  # at most 4 batches a second reach the screen
STAT_POLL_SECONDS = 2.0  # inotify misses writes from other hosts (NFS): stat everything this often
RESCAN_SECONDS = 5.0  # look for new and deleted runs
# A new directory is scanned at once and again this much later: files written into it before its
# inotify watch existed send no event of their own (`cp -r runs/a runs/b`).
NEW_DIRECTORY_RESCAN_SECONDS = 0.5
TICK_SECONDS = 10.0  # time-driven status changes (stalled after minutes, killed after 30 s)
PASS_BUDGET = 4 * 1024 * 1024  # bytes read per pass while holding the lock (keeps the UI responsive)
ERROR_PAUSE_SECONDS = 1.0


@dataclass
class Batch:
    """What changed since the UI last looked."""

    snapshots: dict[str, RunSnapshot] = field(default_factory=dict)
    notes: list[str] | None = None  # global problems, when they changed
    loaded: bool = False  # the cold start finished
    errors: list[str] = field(default_factory=list)  # loop failures the user should see
    roots: list[RootStatus] | None = None  # remote roots' connection states, when they changed


@dataclass
class LoopSettings:
    roots: list[str]
    depth: int = 6
    rules_dir: Path | None = None
    poll_seconds: float | None = None  # poll only, no inotify (and how often remote roots are polled)
    clock: Callable[[], float] = time.time
    storage_options: dict = field(default_factory=dict)  # for remote roots (fsspec)


class LiveLoop:
    def __init__(self, settings: LoopSettings, notify: Callable[[], None]) -> None:
        self.settings = settings
        self.notify = notify
        self.lock = threading.RLock()
        self.session: Session | None = None
        self.watch_error: str | None = None
        self.paused = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._force = False
        self._outbox = Batch()
        self._outbox_lock = threading.Lock()
        self._posted = False
        self._known: set[str] = set()
        self._known_dirs: set[str] = set()
        self._notes: list[str] = []
        self._root_labels: list[tuple[str, str]] = []

    # --- what the UI thread calls ----------------------------------------------------------

    def take(self) -> Batch:
        with self._outbox_lock:
            batch, self._outbox = self._outbox, Batch()
            self._posted = False
        return batch

    def refresh_now(self) -> None:
        """Re-read everything and look for new runs now (the `r` key)."""
        self._force = True
        self._wake.set()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.refresh_now()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def run_by_path(self, path: str) -> Run | None:
        """The live run (hold `lock` while reading it)."""
        session = self.session
        return session.monitor.runs.get(path) if session is not None else None

    # --- the loop, in its own thread ------------------------------------------------------

    def run(self) -> None:
        settings = self.settings
        feed = None
        try:
            remote = RemoteSettings(settings.storage_options, settings.poll_seconds or POLL_SECONDS)
            self.session = open_session(
                settings.roots, max_depth=settings.depth, rules_dir=settings.rules_dir, clock=settings.clock, remote=remote
            )
            monitor = self.session.monitor
            monitor.pass_budget = PASS_BUDGET
            monitor.on_remote_change = self._wake.set
            if settings.poll_seconds is None and monitor.local_roots:
                feed = ChangeFeed(monitor.local_roots, on_change=self._wake.set)
                feed.start()
            self._cold_start()
            self._follow(feed)
        except Exception as exc:  # noqa: BLE001 - the loop dying must be visible, never fatal
            self._publish(set(), error=f"reader stopped: {type(exc).__name__}: {exc}")
        finally:
            if feed is not None:
                feed.stop()
            if self.session is not None:
                self.session.close()

    def _cold_start(self) -> None:
        session = self.session
        with self.lock:
            changed = session.refresh([], rescan=True)
            self._remember_files()
        self._publish(changed)
        while session.monitor.backlog and not self._stopping.is_set():
            with self.lock:
                changed = session.refresh([])
            self._publish(changed)
        with self.lock:
            changed = session.tick()
        self._publish(changed, loaded=True)

    def _follow(self, feed: ChangeFeed | None) -> None:
        settings = self.settings
        poll_every = settings.poll_seconds or STAT_POLL_SECONDS
        now = time.monotonic()
        next_poll = now + poll_every
        next_rescan = now + RESCAN_SECONDS
        next_tick = now + TICK_SECONDS
        watching = False
        while not self._stopping.is_set():
            timeout = max(0.0, min(next_poll, next_rescan, next_tick) - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping.is_set():
                return
            started = time.monotonic()
            force, self._force = self._force, False
            if self.paused and not force:
                continue
            paths = feed.drain() if feed is not None else set()
            if feed is not None and feed.error:
                self.watch_error = feed.error
                feed = None
                self._publish(set(), error=self.watch_error)
            # What appeared between the cold start's scan and the watches being in place sent no event.
            watches_placed = feed is not None and not watching and feed.ready.is_set()
            watching = watching or watches_placed
            poll_all = force or started >= next_poll
            new_directory = self._new_directory(paths)
            arrivals = new_directory or watches_placed or self._unknown_artefacts(paths)
            rescan = force or started >= next_rescan or arrivals
            tick = force or started >= next_tick
            try:
                self._pass(paths, poll_all, rescan, tick)
            except Exception as exc:  # noqa: BLE001 - one bad pass must not end live updates
                self._publish(set(), error=f"update failed: {type(exc).__name__}: {exc}")
                self._stopping.wait(ERROR_PAUSE_SECONDS)
            now = time.monotonic()
            if poll_all:
                next_poll = now + poll_every
            if rescan:
                next_rescan = now + (NEW_DIRECTORY_RESCAN_SECONDS if new_directory else RESCAN_SECONDS)
            if tick:
                next_tick = now + TICK_SECONDS
            if self.session.monitor.backlog:
                self._wake.set()
            # Cap the frame rate: changes arriving meanwhile are read in one pass afterwards.
            self._stopping.wait(max(0.0, started + FRAME_SECONDS - time.monotonic()))

    def _pass(self, paths: set[str], poll_all: bool, rescan: bool, tick: bool) -> None:
        session = self.session
        with self.lock:
            if poll_all:
                changed = session.refresh(None, rescan=rescan)
            else:
                changed = session.refresh(paths & self._known, rescan=rescan)
            if rescan:
                self._remember_files()
            if tick:
                changed |= session.tick()
        self._publish(changed)

    def _remember_files(self) -> None:
        monitor = self.session.monitor
        self._known = {path for run in monitor.runs.values() for path in run.files}
        self._known_dirs = set(monitor.roots)
        for path in self._known:
            directory = os.path.dirname(path)
            while directory not in self._known_dirs and directory != os.path.dirname(directory):
                self._known_dirs.add(directory)
                directory = os.path.dirname(directory)

    def _new_directory(self, paths: Iterable[str]) -> bool:
        return any(path not in self._known_dirs and os.path.isdir(path) for path in paths if path not in self._known)

    def _unknown_artefacts(self, paths: Iterable[str]) -> bool:
        return any(path not in self._known and classify(os.path.basename(path)) for path in paths)

    def _publish(self, changed: set[Run], loaded: bool = False, error: str | None = None) -> None:
        now = self.settings.clock()
        snapshots = {}
        notes = None
        roots = None
        if self.session is not None:
            with self.lock:
                visible = set(self.session.runs()) if changed else set()
                snapshots = {
                    run.path: take_snapshot(run, self.session.diagnosis(run), now) for run in changed if run in visible
                }
                current = [one_line(note, 500) for note in self.session.notes]
            if current != self._notes:
                self._notes = notes = current
            statuses = self.session.monitor.root_status()
            labels = [(status.root, status.label(now)) for status in statuses]
            if labels != self._root_labels:
                self._root_labels, roots = labels, statuses
        if not snapshots and notes is None and roots is None and not loaded and error is None:
            return
        with self._outbox_lock:
            self._outbox.snapshots.update(snapshots)
            if notes is not None:
                self._outbox.notes = notes
            if roots is not None:
                self._outbox.roots = roots
            self._outbox.loaded |= loaded
            if error is not None:
                self._outbox.errors.append(error)
            post = not self._posted
            self._posted = True
        if post:
            self.notify()
