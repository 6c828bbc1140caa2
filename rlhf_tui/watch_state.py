"""What `rlhf-top watch` keeps between its runs, so a restarted watcher says nothing twice.

One small JSON file per watch (its roots, destinations and kinds: change any and it is a new watch)
under the user's state directory, `$XDG_STATE_HOME/rlhf-top` or `~/.local/state/rlhf-top`, never in
a run directory. It holds what the event tracker last saw of each run, and the events not yet sent
(sent at the next start when the watcher stopped before it could). It is rewritten whole, atomically,
whenever either changes. A lock file beside it keeps a second watcher of the same watch from starting.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlhf_tui.core.filesystem import canonical_root
from rlhf_tui.events import Event

VERSION = 1

log = logging.getLogger(__name__)


class AlreadyWatching(RuntimeError):
    pass


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "rlhf-top"


def state_file(roots: Iterable[str], destinations: Iterable[str], kinds: Iterable[str]) -> Path:
    """The file of this watch; destination URLs, which may hold secrets, only enter its name's hash."""
    identity = json.dumps([sorted(canonical_root(r) for r in roots), sorted(destinations), sorted(kinds)])
    return state_dir() / f"watch-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json"


class WatchState:
    """runs: the event tracker's memory, None before the first look; pending: events not yet sent."""

    def __init__(self, path: Path, roots: list[str]) -> None:
        self.path = path
        self.roots = [canonical_root(r) for r in roots]
        self.runs: dict[str, dict[str, Any]] | None = None
        self.pending: list[Event] = []
        self._lock = threading.Lock()
        self._lock_file: Any = None

    def acquire(self) -> None:
        """Hold the watch's lock for as long as this process lives; AlreadyWatching when another has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_file = open(self.path.with_suffix(".lock"), "a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise AlreadyWatching(f"another rlhf-top watch with the same roots and --notify runs ({self.path})") from None

    def load(self) -> None:
        try:
            document = json.loads(self.path.read_text())
            runs = document["runs"]
            pending = [Event.from_json(event) for event in document["pending"]]
            if document.get("version") != VERSION or not isinstance(runs, dict):
                raise ValueError(f"version {document.get('version')!r}")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("state file %s unreadable (%s): starting afresh", self.path, exc)
            return
        self.runs, self.pending = runs, pending

    def save(self, runs: dict[str, dict[str, Any]] | None = None, new: Iterable[Event] = ()) -> None:
        """Record the tracker's memory (when given) and events to send."""
        with self._lock:
            if runs is not None:
                self.runs = runs
            self.pending.extend(new)
            self._write()

    def sent(self, events: Iterable[Event]) -> None:
        """These events have been sent (or given up on): not again."""
        done = set(events)
        with self._lock:
            self.pending = [event for event in self.pending if event not in done]
            self._write()

    def _write(self) -> None:
        document = {
            "version": VERSION,
            "roots": self.roots,
            "saved": time.time(),
            "runs": self.runs or {},
            "pending": [event.as_json() for event in self.pending],
        }
        temporary = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                json.dump(document, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            log.error("cannot save the state to %s: %s", self.path, exc)
