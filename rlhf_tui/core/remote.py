"""A root on another machine, followed by a thread of its own so a slow or dead host never holds up
the other roots or the screen.

The thread connects, finds the runs there with the same `discover()` as a local root (over a
`RemoteFS`), and at each pass reads what the followed files gained with the same `FileTail` and
`WholeFile`: one listing per directory (on an object store, one for the whole root), and a ranged
read only of a file that grew. The monitor never waits on it: it takes the latest discovery
(`found`) and each file's latest read (`RemoteFollower`) as they are.

A pass that saw nothing new makes the next one come later (the interval doubles, up to
`QUIET_BACKOFF` times), a change brings it back. Any failure to reach the root drops the connection
and retries with backoff (1 s, doubling to a minute); the followers keep their offsets, so reading
resumes where it stopped, nothing read twice or lost. `status()` says where it stands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlhf_tui.core.discover import DEFAULT_MAX_DEPTH, Found, discover
from rlhf_tui.core.filesystem import RemoteFS, Unreachable
from rlhf_tui.core.tail import FileTail, TailRead, WholeFile

POLL_SECONDS = 2.0
QUIET_BACKOFF = 4
RESCAN_SECONDS = 30.0  # a walk of the whole root, for new and deleted runs
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
FILE_BUDGET = 8 * 1024 * 1024
PASS_BUDGET = 32 * 1024 * 1024


@dataclass
class RemoteSettings:
    """How remote roots are reached: fsspec storage options (`--storage-option`), and how often polled."""

    storage_options: dict[str, Any] = field(default_factory=dict)
    poll_seconds: float = POLL_SECONDS


@dataclass(frozen=True)
class RootStatus:
    root: str
    host: str
    state: str  # connecting, connected, retrying, auth failed
    message: str | None  # why it is not connected
    retry_at: float | None  # time.time() of the next try
    requests: int
    bytes: int
    seconds: float  # since the root was first tried

    def retry_in(self, now: float) -> float | None:
        return None if self.retry_at is None else max(0.0, self.retry_at - now)

    def label(self, now: float) -> str:
        """The state in a few words: "connected", "retrying in 8 s", "auth failed"."""
        wait = self.retry_in(now)
        if self.state == "retrying" and wait is not None:
            return f"retrying in {wait:.0f} s"
        return self.state

    def per_minute(self) -> tuple[float, float]:
        minutes = max(self.seconds, 1.0) / 60
        return self.requests / minutes, self.bytes / minutes

    def as_json(self, now: float) -> dict[str, Any]:
        requests, transferred = self.per_minute()
        return {
            "root": self.root,
            "state": self.state,
            "message": self.message,
            "retry_in": self.retry_in(now),
            "requests": self.requests,
            "bytes": self.bytes,
            "requests_per_minute": round(requests, 1),
            "bytes_per_minute": round(transferred),
        }


class RemoteFollower:
    """What the monitor holds for a remote file in place of its `FileTail` or `WholeFile`: the result
    of the root's last read of it, handed over without waiting. The root's thread drives `inner`."""

    def __init__(self, inner: FileTail | WholeFile, lock: threading.Lock) -> None:
        self.inner = inner
        self.mtime = 0.0
        self._lock = lock
        self._result: TailRead | None = None
        self._status = TailRead()  # missing or failing, as last read: a stream keeps saying it
        self._generation = 0
        self._started = -1
        self.fresh = True  # not read since it was followed

    # --- the monitor's side -----------------------------------------------------------------

    def read(self, budget: int = 0) -> TailRead:
        """For a stream: the bytes read since the last call (never more than the root's file budget)."""
        with self._lock:
            result, self._result = self._result, None
            return result if result is not None else TailRead(missing=self._status.missing, error=self._status.error)

    def read_if_changed(self) -> TailRead | None:
        """For a document: its content when it changed since the last call, else None."""
        with self._lock:
            result, self._result = self._result, None
            return result

    @property
    def offset(self) -> int:
        return getattr(self.inner, "offset", 0)

    @offset.setter
    def offset(self, value: int) -> None:
        """`offset = 0`: read the file again from its start, dropping what was read for the old reader."""
        with self._lock:
            self._generation += 1
            self._result = None

    # --- the root's thread ------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """A read is waiting for the monitor to take it."""
        return self._result is not None

    @property
    def has_more(self) -> bool:
        """The file was longer than what was read of it (as of the last listing)."""
        return isinstance(self.inner, FileTail) and self.inner.offset < self.inner.size

    @property
    def behind(self) -> bool:
        """More is there than has been handed over (as of the last listing)."""
        return self.fresh or self._result is not None or self.has_more

    def fetch(self, budget: int) -> int:
        """Read what is new (blocking); returns the bytes read, or -1 when there is something new to hand over."""
        with self._lock:
            generation = self._generation
        if generation != self._started and isinstance(self.inner, FileTail):
            self.inner.offset = 0
            self.inner.lost = False
        self._started = generation
        result: TailRead | None
        if isinstance(self.inner, FileTail):
            result = self.inner.read(budget)
            result.pending = False  # the root's thread reads the rest once this is taken
        else:
            result = self.inner.read_if_changed()
        self.fresh = False
        if result is None:
            return 0
        status_changed = (result.missing, result.error) != (self._status.missing, self._status.error)
        self._status = TailRead(missing=result.missing, error=result.error)
        if not (result.data or result.reset or status_changed):
            return 0
        with self._lock:
            if generation != self._generation:
                return 0
            self._result = result
            self.mtime = self.inner.mtime
        return max(len(result.data), 1)


class RemoteRoot:
    """One remote root and its thread; see the module's docstring."""

    def __init__(
        self,
        root: str,
        settings: RemoteSettings | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings or RemoteSettings()
        self.fs = RemoteFS(root, self.settings.storage_options)
        self.root = self.fs.root
        self.max_depth = max_depth
        self.on_change = on_change
        self.found: Found | None = None  # the latest discovery
        self.directories: set[str] = set()  # every directory that discovery listed
        self.discoveries = 0
        self.passes = 0  # passes that reached the root
        self.failures = 0
        self._state = "connecting"
        self._message: str | None = None
        self._retry_at: float | None = None
        self._started = time.time()
        self._lock = threading.Lock()
        self._followers: dict[str, RemoteFollower] = {}
        self._ready: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rlhf-top-remote {self.root}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    # --- what the monitor calls -------------------------------------------------------------

    def follow(self, path: str, stream: bool) -> RemoteFollower:
        inner = FileTail(path, self.fs) if stream else WholeFile(path, self.fs)
        follower = RemoteFollower(inner, self._lock)
        with self._lock:
            self._followers[path] = follower
        self._wake.set()
        return follower

    def unfollow(self, path: str) -> None:
        with self._lock:
            self._followers.pop(path, None)
            self._ready.discard(path)

    def take_ready(self) -> set[str]:
        """Paths with a read waiting since the last call; the thread goes on at once with a file
        that has more than its budget took."""
        with self._lock:
            ready, self._ready = self._ready, set()
            more = any(self._followers[path].has_more for path in ready if path in self._followers)
        if more:
            self._wake.set()
        return ready

    def behind(self) -> bool:
        """Connected, and something is not yet read or not yet taken."""
        if self._state != "connected" and self.failures:
            return False
        if self.found is None:
            return True
        with self._lock:
            return any(f.behind for f in self._followers.values())

    def settled(self) -> bool:
        """Discovered once, or failed to."""
        return self.discoveries > 0 or self.failures > 0

    def status(self) -> RootStatus:
        return RootStatus(
            self.root,
            self.fs.host,
            self._state,
            self._message,
            self._retry_at,
            self.fs.requests,
            self.fs.bytes,
            time.time() - self._started,
        )

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.settings.poll_seconds
        next_discovery = 0.0
        while not self._stop.is_set():
            try:
                if not self.fs.connected:
                    self.fs.connect()
                    next_discovery = 0.0
                self.fs.new_pass()
                if time.monotonic() >= next_discovery:
                    self._discover()
                    next_discovery = time.monotonic() + RESCAN_SECONDS
                changed = self._fetch()
                self._set_state("connected")
                self.failures = 0
                self.passes += 1
                quiet_limit = self.settings.poll_seconds * QUIET_BACKOFF
                interval = self.settings.poll_seconds if changed else min(interval * 2, quiet_limit)
                wait = interval
            except Unreachable as problem:
                wait = self._failed(problem.message, problem.auth)
            except Exception as exc:  # noqa: BLE001 - a bug here must show on the root, not end its thread
                wait = self._failed(f"{self.root}: {type(exc).__name__}: {exc}", False)
            self._wake.wait(wait)
            self._wake.clear()

    def _failed(self, message: str, auth: bool) -> float:
        self.fs.close()
        self.failures += 1
        wait = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (self.failures - 1))
        self._set_state("auth failed" if auth else "retrying", message, time.time() + wait)
        return wait

    def _set_state(self, state: str, message: str | None = None, retry_at: float | None = None) -> None:
        changed = (state, message) != (self._state, self._message)
        self._state, self._message, self._retry_at = state, message, retry_at
        if changed and self.on_change is not None:
            self.on_change()

    def _discover(self) -> None:
        found = discover([self.root], self.max_depth, self.fs)
        directories = {self.root, *self.fs.listed()}
        with self._lock:
            self.found = found
            self.directories = directories
            self.discoveries += 1
        if self.on_change is not None:
            self.on_change()

    def _fetch(self) -> bool:
        """Read every followed file that has something new, within the pass budget."""
        with self._lock:
            followers = [(path, f) for path, f in self._followers.items() if not f.waiting]
        budget = PASS_BUDGET
        fetched = False
        try:
            for path, follower in sorted(followers, key=lambda item: item[0]):
                if budget <= 0:
                    break
                got = follower.fetch(min(FILE_BUDGET, budget))
                if got:
                    budget -= got
                    fetched = True
                    with self._lock:  # at once: a failure later in the pass must not strand this read
                        if path in self._followers:
                            self._ready.add(path)
        finally:
            if fetched and self.on_change is not None:
                self.on_change()
        return fetched
