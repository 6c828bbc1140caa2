"""Telling the monitor what changed: watchfiles (inotify) with a short debounce, or plain polling.

inotify sees nothing written by other hosts on NFS/Lustre, so the consumer also stat-polls every
known file at a slow cadence; `--poll SECONDS` turns watchfiles off and polls only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

DEBOUNCE_MS = 50
# How long the watcher waits for an event before it says it is quiet: its first word, change or
# quiet, tells that its watches are in place (`ready`).
QUIET_MS = 250


class ChangeFeed:
    """Collects changed paths from a watchfiles thread until the consumer drains them."""

    def __init__(
        self,
        roots: Iterable[str],
        on_change: Callable[[], None] | None = None,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        self.roots = list(roots)
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.error: str | None = None
        self.ready = threading.Event()  # the watches are in place: changes from here on are seen
        self._paths: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rlhf-top-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def drain(self) -> set[str]:
        with self._lock:
            paths, self._paths = self._paths, set()
        return paths

    def _run(self) -> None:
        try:
            from watchfiles import watch

            for changes in watch(
                *self.roots,
                debounce=self.debounce_ms,
                step=self.debounce_ms,
                stop_event=self._stop,
                raise_interrupt=False,
                ignore_permission_denied=True,
                rust_timeout=QUIET_MS,
                yield_on_timeout=True,
            ):
                if not changes and self.ready.is_set():
                    continue
                self.ready.set()
                with self._lock:
                    self._paths.update(path for _, path in changes)
                if self.on_change is not None:
                    self.on_change()
        except Exception as exc:  # noqa: BLE001 - fall back to polling, and say so
            self.error = f"file watching unavailable ({type(exc).__name__}: {exc}); polling instead"
