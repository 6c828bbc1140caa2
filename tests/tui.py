"""Driving the TUI in tests through Textual's public API only: what the screen shows, which
notifications were raised, waiting for the app to get somewhere."""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass

_CHUNK = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="([\d.]+)" '
    r'clip-path="url\(#[^)]*-line-(\d+)\)">(.*?)</text>'
)


def screen_text(app) -> str:
    """What the terminal shows, as plain text, read back from `App.export_screenshot()` (an SVG whose
    text chunks sit at cell positions)."""
    svg = app.export_screenshot()
    width, height = app.size
    lines = [[" "] * width for _ in range(height)]
    chunks = [(float(x), float(length), int(line), html.unescape(text)) for x, length, line, text in _CHUNK.findall(svg)]
    cell = min((length / len(text) for _, length, _, text in chunks if text), default=1.0)
    left = min((x for x, _, _, _ in chunks), default=0.0)
    for x, _, line, text in chunks:
        column = round((x - left) / cell)
        for offset, char in enumerate(text.replace("\xa0", " ")):
            if line < height and column + offset < width:
                lines[line][column + offset] = char
    return "\n".join("".join(line).rstrip() for line in lines)


@dataclass(frozen=True)
class Notice:
    message: str
    title: str
    severity: str


class Notifications:
    """Every `App.notify` call of `app` from now on, in order (the toasts themselves come and go)."""

    def __init__(self, app) -> None:
        self.seen: list[Notice] = []
        notify = app.notify

        def recording(message, *, title="", severity="information", **kwargs):
            self.seen.append(Notice(str(message), str(title), severity))
            return notify(message, title=title, severity=severity, **kwargs)

        app.notify = recording

    def any(self, text: str) -> bool:
        return any(text in notice.message or text in notice.title for notice in self.seen)


async def wait_for(pilot, condition, timeout: float = 15.0) -> None:
    """Let the app run until `condition()` holds (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not get there")
        await pilot.pause(0.05)
