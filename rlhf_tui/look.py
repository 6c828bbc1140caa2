"""How severities, statuses and sparklines look: a glyph and a word first, colour only on top.

Shared by the TUI and `--once`. `Look` is per display: under NO_COLOR (or `--color-system none`)
colours turn to greys, and red on a dark background to grey on grey, so severity is then carried by
the glyph, the word and text styles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from rlhf_tui.rules import severity

GLYPHS = {"critical": "✖", "high": "▲", "medium": "◆", "low": "•", severity.OK: "✓"}
_COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", severity.OK: "green"}
_MONOCHROME = {"critical": "bold reverse", "high": "bold", "medium": "bold", "low": "", severity.OK: ""}

LIFECYCLE_GLYPH = {
    "running": "▶",
    "finished": "■",
    "crashed": "✖",
    "killed": "✖",
    "stalled": "‖",
    "stopped": "□",
    "gone": "?",
}

LOADING_GLYPH = "…"  # a run whose history is still being read

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def glyph(level: str) -> str:
    return GLYPHS.get(level, "?")


@dataclass(frozen=True)
class Look:
    monochrome: bool = False

    def style(self, level: str) -> str:
        return (_MONOCHROME if self.monochrome else _COLOURS).get(level, "")

    def badge(self, word: str, level: str) -> Text:
        """A status as glyph + word, readable without colour."""
        return Text(f"{glyph(level)} {word}", style=self.style(level), no_wrap=True, end="")


def sparkline(values: Sequence[float], width: int | None = None) -> str:
    """Block characters for finite values (already reduced to at most `width` points)."""
    if width is not None:
        values = values[-width:]
    if not values:
        return ""
    low = min(values)
    high = max(values)
    if high == low:
        return SPARK_BLOCKS[len(SPARK_BLOCKS) // 2 - 1] * len(values)
    # Halved so that the span of two huge finite values cannot overflow to Inf.
    span = high / 2 - low / 2
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[min(top, int((v / 2 - low / 2) / span * top))] for v in values)


def progress_bar(step: int | None, max_steps: int | None, width: int) -> str:
    """▰▰▰▱▱ for step/max_steps; blank when the length of the run is unknown."""
    if step is None or not max_steps or width <= 0:
        return " " * max(width, 0)
    filled = min(width, round(width * step / max_steps))
    return "▰" * filled + "▱" * (width - filled)
