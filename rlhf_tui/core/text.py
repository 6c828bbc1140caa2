"""Text read from runs (names, metric keys, tracebacks, notes) made safe to show.

Widgets render it as data (`rich.text.Text`, never markup); here it also loses what could still move
the cursor or restyle the terminal: ANSI escape sequences, control characters and bidi overrides.
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]?"  # any other escape
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

NAME_LIMIT = 200
LINE_LIMIT = 500
BLOCK_LINES = 2000


def one_line(text: str, limit: int = NAME_LIMIT) -> str:
    """A single display line: escapes removed, breaks and tabs turned to spaces, length capped.

    Bytes of a file name that were not UTF-8 (kept by Python as lone surrogates) become U+FFFD.
    """
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _ESCAPES.sub("", text)
    text = _LINE_BREAKS.sub(" ", text).replace("\t", " ")
    text = _CONTROLS.sub("", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clean(text: str) -> str:
    """Multi-line text with escapes and control characters removed; every line break a `\\n`."""
    lines = _LINE_BREAKS.split(_ESCAPES.sub("", text).expandtabs(4))
    return "\n".join(_CONTROLS.sub("", line) for line in lines)


def block(text: str, line_limit: int = LINE_LIMIT, max_lines: int = BLOCK_LINES) -> str:
    """Multi-line text (a traceback), cleaned, each line capped.

    A long block keeps its end, where a traceback says what went wrong.
    """
    lines = clean(text).split("\n")
    if len(lines) > max_lines:
        cut = len(lines) - max_lines
        lines = [f"… {cut} earlier lines not shown"] + lines[cut:]
    capped = [line if len(line) <= line_limit else line[: line_limit - 1] + "…" for line in lines]
    return "\n".join(capped).strip("\n")
