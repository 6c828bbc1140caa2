"""Splitting a byte stream into complete lines, holding back a torn last line."""

from __future__ import annotations

MAX_LINE_BYTES = 1024 * 1024


class LineBuffer:
    """Feed bytes, get complete lines. A line longer than MAX_LINE_BYTES is dropped and reported."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._partial = b""
        self._max_line = max_line
        self._skipping = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        if self._skipping:
            cut = data.find(b"\n")
            if cut < 0:
                return []
            data = data[cut + 1 :]
            self._skipping = False
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self._max_line:
            self._partial = b""
            self._skipping = True
            self.dropped += 1
        if self._max_line < len(data) and lines and max(map(len, lines)) > self._max_line:
            kept = [line for line in lines if len(line) <= self._max_line]
            self.dropped += len(lines) - len(kept)
            return kept
        return lines
