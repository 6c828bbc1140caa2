"""Redrawing a live view at a bounded rate, however often its runs change."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.message_pump import MessagePump
from textual.timer import Timer


class Pacer:
    """Runs an action at most once per `seconds`: a request that comes sooner is held until then (once)."""

    def __init__(self, node: MessagePump, seconds: float, action: Callable[[], None]) -> None:
        self.node = node
        self.seconds = seconds
        self.action = action
        self.last = 0.0
        self._pending: Timer | None = None

    def ran(self) -> None:
        """The action just ran (whoever called it)."""
        self.last = time.monotonic()

    def request(self) -> None:
        if self._pending is not None:
            return
        wait = self.last + self.seconds - time.monotonic()
        if wait <= 0:
            self.action()
        else:
            self._pending = self.node.set_timer(wait, self._run_later)

    def _run_later(self) -> None:
        self._pending = None
        self.action()
