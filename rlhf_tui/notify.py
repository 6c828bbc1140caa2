"""Telling people: events (events.py) as messages, sent through Apprise or printed (`--dry-run`).

One message per event; when more than `DIGEST_AFTER` events arrive within `COLLECT_SECONDS` of the
first (a node failure takes down many runs at once), one digest instead. Each destination gets its
messages in order, in a thread of the `Notifier`'s own; a failed delivery is retried with backoff
for up to `GIVE_UP_SECONDS`, logged at every failure, and never stops anything else.

Apprise is an optional dependency (`rlhf-top[notify]`), imported only when a URL is given.
"""

from __future__ import annotations

import logging
import shlex
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from rlhf_tui.core.text import one_line
from rlhf_tui.events import Event

COLLECT_SECONDS = 2.0
DIGEST_AFTER = 3
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 300.0
GIVE_UP_SECONDS = 3600.0
LEVELS = {  # Apprise's notify types: how a destination colours or ranks the message
    "crash": "failure",
    "killed": "failure",
    "diverged": "failure",
    "stall": "warning",
    "high": "warning",
    "finish": "success",
}
_LEVEL_ORDER = ("failure", "warning", "success", "info")
INSTALL = "pip install 'rlhf-top[notify]'"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    level: str  # Apprise's notify type: "failure", "warning", "success" or "info"
    events: tuple[Event, ...]


def report_command(path: str) -> str:
    """The command that opens the run's report, one line that bash reads back as exactly `path`,
    whatever its directory is called (a name with control characters is quoted as bash's $'...')."""
    if one_line(path, len(path) + 1) == path:
        return f"rlhf-top report {shlex.quote(path)}"
    return f"rlhf-top report {_ansi_c_quoted(path)}"


def _ansi_c_quoted(text: str) -> str:
    """bash's $'...': printable ASCII as itself, every other byte of the name as \\xHH."""
    quoted = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        quoted.append(char if 0x20 <= byte < 0x7F and char not in "\\'" else f"\\x{byte:02x}")
    return "$'" + "".join(quoted) + "'"


def _step(event: Event) -> str:
    if event.step is None:
        return "none logged"
    return f"{event.step} / {event.max_steps}" if event.max_steps else str(event.step)


def message(event: Event) -> Message:
    body = "\n".join(
        (
            f"run: {event.name}",
            f"host: {event.host}",
            f"trainer: {event.trainer}",
            f"step: {_step(event)}",
            f"status: {event.status}",
            f"detail: {event.detail}",
            f"open: {report_command(event.path)}",
        )
    )
    return Message(f"[rlhf-top] {event.name}: {event.what}", body, LEVELS[event.kind], (event,))


def digest(events: list[Event]) -> Message:
    counts = Counter(event.kind for event in events)
    summary = ", ".join(f"{count} {kind}" for kind, count in counts.most_common())
    lines = []
    for event in events:
        lines.append(f"{event.name} · {event.status} · step {_step(event)} · {event.trainer} · {event.host}")
        lines.append(f"  {event.detail}")
        lines.append(f"  {report_command(event.path)}")
    level = min((LEVELS[event.kind] for event in events), key=_LEVEL_ORDER.index)
    return Message(f"[rlhf-top] {len(events)} events at once: {summary}", "\n".join(lines), level, tuple(events))


def compose(events: list[Event], digest_after: int = DIGEST_AFTER) -> list[Message]:
    if len(events) > digest_after:
        return [digest(events)]
    return [message(event) for event in events]


class Transport(Protocol):
    label: str  # how logs name the destination (secrets masked)

    def send(self, message: Message) -> bool:
        """True when the destination took the message."""


class MissingApprise(RuntimeError):
    pass


def load_apprise():
    try:
        import apprise
    except ImportError:
        raise MissingApprise(f"sending notifications needs Apprise: {INSTALL}") from None
    return apprise


class AppriseTransport:
    """One destination, by Apprise URL (slack://, ntfy://, mailto://, json://, ...)."""

    def __init__(self, url: str) -> None:
        apprise = load_apprise()
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"not a notification URL Apprise knows: {url}")
        self.label = self._apprise[0].url(privacy=True).split("?")[0]  # Apprise adds every default
        self._text = apprise.NotifyFormat.TEXT

    def send(self, message: Message) -> bool:
        return bool(
            self._apprise.notify(body=message.body, title=message.title, notify_type=message.level, body_format=self._text)
        )


def apprise_transports(urls: Iterable[str]) -> list[Transport]:
    """One destination per URL; MissingApprise, or ValueError for a URL Apprise does not know."""
    return [AppriseTransport(url) for url in urls]


class PrintTransport:
    """`--dry-run`: each message printed as it would be sent."""

    label = "standard output (dry run)"

    def send(self, message: Message) -> bool:
        sys.stdout.write(f"--- {message.level}: {message.title}\n{message.body}\n\n")
        sys.stdout.flush()
        return True


@dataclass
class _Job:
    message: Message
    remaining: int  # destinations that have not yet taken it or been given up on


@dataclass
class _Delivery:
    job: _Job
    attempts: int = 0
    first_try: float | None = None
    due: float = 0.0


@dataclass
class _Destination:
    transport: Transport
    queue: deque[_Delivery] = field(default_factory=deque)


class Notifier:
    """Sends what `add()` is given to every destination, in a thread of its own.

    on_done(message): called when a message has been taken by every destination or given up on
    (not when `close()` came first: then it was not sent, and the caller may keep it for later).
    """

    def __init__(self, transports: Iterable[Transport], on_done: Callable[[Message], None] | None = None) -> None:
        self._destinations = [_Destination(transport) for transport in transports]
        self._on_done = on_done
        self._cond = threading.Condition()
        self._incoming: list[Event] = []
        self._collect_until: float | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="rlhf-top-notify", daemon=True)
        self._thread.start()

    def add(self, events: Iterable[Event]) -> None:
        events = list(events)
        if not events:
            return
        with self._cond:
            self._incoming.extend(events)
            if self._collect_until is None:
                self._collect_until = time.monotonic() + COLLECT_SECONDS
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is waiting, one try each, and stop (waiting at most `timeout` seconds)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                collect_until = self._collect_until
                if collect_until is not None and (self._closing or now >= collect_until):
                    self._enqueue(compose(self._incoming))
                    self._incoming, self._collect_until = [], None
                due = [d for d in self._destinations if d.queue and (self._closing or d.queue[0].due <= now)]
                if not due:
                    if self._closing:
                        return
                    self._cond.wait(self._next_wake(now))
                    continue
            for destination in due:
                self._attempt(destination)

    def _next_wake(self, now: float) -> float | None:
        times = [d.queue[0].due for d in self._destinations if d.queue]
        if self._collect_until is not None:
            times.append(self._collect_until)
        return max(0.0, min(times) - now) if times else None

    def _enqueue(self, messages: list[Message]) -> None:
        for message in messages:
            job = _Job(message, len(self._destinations))
            for destination in self._destinations:
                destination.queue.append(_Delivery(job))
            if not self._destinations:
                self._finish(job)

    def _attempt(self, destination: _Destination) -> None:
        delivery = destination.queue[0]
        transport = destination.transport
        title = delivery.job.message.title
        try:
            sent = transport.send(delivery.job.message)
        except Exception as exc:  # noqa: BLE001 - a destination's failure is logged, never fatal
            log.warning("sending %r to %s raised %s: %s", title, transport.label, type(exc).__name__, exc)
            sent = False
        now = time.monotonic()
        delivery.attempts += 1
        if delivery.first_try is None:
            delivery.first_try = now
        if sent:
            self._done(destination)
            log.info("sent %r to %s", title, transport.label)  # once on_done has recorded it: not to be sent again
        elif self._closing:
            log.warning("not sent %r to %s: stopping", title, transport.label)
            destination.queue.clear()
        elif now - delivery.first_try >= GIVE_UP_SECONDS:
            self._done(destination)
            log.error("gave up sending %r to %s after %d attempts", title, transport.label, delivery.attempts)
        else:
            delay = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (delivery.attempts - 1))
            delivery.due = now + delay
            log.warning(
                "could not send %r to %s (attempt %d); retrying in %.0f s", title, transport.label, delivery.attempts, delay
            )

    def _done(self, destination: _Destination) -> None:
        job = destination.queue.popleft().job
        job.remaining -= 1
        if job.remaining == 0:
            self._finish(job)

    def _finish(self, job: _Job) -> None:
        if self._on_done is None:
            return
        try:
            self._on_done(job.message)
        except Exception:  # noqa: BLE001 - keeping a record must not stop the sending
            log.exception("after sending %r", job.message.title)
