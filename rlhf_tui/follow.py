"""Following runs as they train: watch files, read what changed, re-check what time changes, say what
happened. The TUI (ui/live.py) and `rlhf-top watch` (watcher.py) both run this loop, each in a thread
of its own, and hear from it through `on_pass`.

`Follower.run()` owns the session; others hold `lock` while they read a run. Passes are paced: however
fast runs log, there is at most one pass per `FRAME_SECONDS`. The cold start shows each big log's
tail first and its history when worker processes have read it (core/history.py), the run on screen
first (`prefer`). Events (events.py) are worked out once the cold start is over, then after every
pass for the runs it changed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_tui.core.discover import classify
from rlhf_tui.core.remote import POLL_SECONDS, RemoteSettings
from rlhf_tui.core.run import Run
from rlhf_tui.core.watch import ChangeFeed
from rlhf_tui.events import Event, EventTracker
from rlhf_tui.session import Session, open_session

FRAME_SECONDS = 0.25  # at most 4 passes a second
STAT_POLL_SECONDS = 2.0  # inotify misses writes from other hosts (NFS): stat everything this often
RESCAN_SECONDS = 5.0  # look for new and deleted runs
# A new directory is scanned at once and again this much later: files written into it before its
# inotify watch existed send no event of their own (`cp -r runs/a runs/b`).
NEW_DIRECTORY_RESCAN_SECONDS = 0.5
TICK_SECONDS = 10.0  # time-driven status changes (stalled after minutes, killed after 30 s)
PASS_BUDGET = 4 * 1024 * 1024  # bytes read per pass while holding the lock (keeps readers of runs responsive)
ERROR_PAUSE_SECONDS = 1.0
# The cold start waits this long at most for roots on other machines to be listed and read, so that
# their runs, too, are taken as they are rather than announced; a host that is still silent by then
# is followed like any other, as it comes.
REMOTE_FIRST_LOOK_SECONDS = 30.0


@dataclass
class LoopSettings:
    roots: list[str]
    depth: int = 6
    rules_dir: Path | None = None
    poll_seconds: float | None = None  # poll only, no inotify (and how often remote roots are polled)
    clock: Callable[[], float] = time.time
    storage_options: dict = field(default_factory=dict)  # for remote roots (fsspec)


@dataclass
class Pass:
    """What one pass of the loop did."""

    changed: set[Run] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    loaded: bool = False  # the cold start finished
    error: str | None = None  # a loop failure the user should see


class Follower:
    def __init__(self, settings: LoopSettings, on_pass: Callable[[Pass], None], events: EventTracker) -> None:
        self.settings = settings
        self.on_pass = on_pass
        self.events = events
        self.lock = threading.RLock()
        self.session: Session | None = None
        self.paused = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._force = False
        self._known: set[str] = set()
        self._known_dirs: set[str] = set()

    def refresh_now(self) -> None:
        """Re-read everything and look for new runs now."""
        self._force = True
        self._wake.set()

    def prefer(self, run_paths: list[str]) -> None:
        """Read these runs' histories before the others' (the runs on screen)."""
        if self.session is not None:
            self.session.monitor.prefer(run_paths)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Follow the runs until `stop()`; the caller's thread does all the work."""
        settings = self.settings
        feed = None
        try:
            remote = RemoteSettings(settings.storage_options, settings.poll_seconds or POLL_SECONDS)
            self.session = open_session(
                settings.roots, max_depth=settings.depth, rules_dir=settings.rules_dir, clock=settings.clock, remote=remote
            )
            monitor = self.session.monitor
            monitor.pass_budget = PASS_BUDGET
            monitor.preview = True
            monitor.on_remote_change = self._wake.set
            if settings.poll_seconds is None and monitor.local_roots:
                feed = ChangeFeed(monitor.local_roots, on_change=self._wake.set)
                feed.start()
            self._cold_start()
            self._follow(feed)
        except Exception as exc:  # noqa: BLE001 - the loop dying must be visible, never fatal
            self.on_pass(Pass(error=f"reader stopped: {type(exc).__name__}: {exc}"))
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
        self.on_pass(Pass(changed))
        self._read_backlog()
        deadline = time.monotonic() + REMOTE_FIRST_LOOK_SECONDS
        while not session.monitor.remote_caught_up() and time.monotonic() < deadline and not self._stopping.is_set():
            self._wake.wait(0.1)  # the monitor's remote roots wake it when they have something
            self._wake.clear()
            with self.lock:
                changed = session.refresh([])  # what the remote roots found and read meanwhile
                self._remember_files()
            self.on_pass(Pass(changed))
            self._read_backlog()
        if self._stopping.is_set():
            return  # a history read in part must not become the first look (nor events, nor saved state)
        with self.lock:
            changed = session.tick()
            # Only now: a history read in parts shows states that the whole of it no longer has.
            now = session.clock()
            events = self.events.start([(run, session.diagnosis(run)) for run in session.runs()], now, session.rules)
        self.on_pass(Pass(changed, events, loaded=True))

    def _read_backlog(self) -> None:
        """Read what is known to wait, a pass at a time."""
        session = self.session
        while session.monitor.backlog and not self._stopping.is_set():
            session.monitor.await_history(FRAME_SECONDS)
            with self.lock:
                changed = session.refresh([])
            self.on_pass(Pass(changed))

    def _follow(self, feed: ChangeFeed | None) -> None:
        settings = self.settings
        poll_every = settings.poll_seconds or STAT_POLL_SECONDS
        now = time.monotonic()
        next_poll = now + poll_every
        next_rescan = now + RESCAN_SECONDS
        next_tick = now + TICK_SECONDS
        watching = False
        while not self._stopping.is_set():
            # Paused, nothing is due until the user resumes (which wakes the loop).
            timeout = None if self.paused else max(0.0, min(next_poll, next_rescan, next_tick) - time.monotonic())
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
                error = feed.error
                feed = None
                self.on_pass(Pass(error=error))
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
                self.on_pass(Pass(error=f"update failed: {type(exc).__name__}: {exc}"))
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
            # Cap the pace: changes arriving meanwhile are read in one pass afterwards.
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
            events = []
            if changed:
                visible = set(session.runs())
                now = session.clock()
                events = self.events.update([(run, session.diagnosis(run)) for run in changed if run in visible], now)
        self.on_pass(Pass(changed, events))

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
