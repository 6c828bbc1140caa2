"""How severities, statuses and sparklines look: a glyph and a word first, colour only on top."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

SEVERITY_GLYPH = {"critical": "✖", "high": "▲", "medium": "◆", "low": "•", "ok": "✓"}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "ok": "green"}
# NO_COLOR turns colours into greys, and red on a dark background into grey on grey: without colour,
# severity is carried by the glyph, the word and these text styles.
MONOCHROME_STYLE = {"critical": "bold reverse", "high": "bold", "medium": "bold", "low": "", "ok": ""}
SEVERITY_LABEL = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW"}
SEVERITIES = ("critical", "high", "medium", "low")
PROBLEM_SEVERITIES = frozenset({"critical", "high"})

LIFECYCLE_GLYPH = {
    "running": "▶",
    "finished": "■",
    "crashed": "✖",
    "killed": "✖",
    "stalled": "‖",
    "gone": "?",
}

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


_monochrome = False


def set_monochrome(monochrome: bool) -> None:
    """The app says so once, from NO_COLOR / --color-system none (a process-wide setting)."""
    global _monochrome
    _monochrome = monochrome


def glyph(severity: str) -> str:
    return SEVERITY_GLYPH.get(severity, "?")


def style(severity: str) -> str:
    return (MONOCHROME_STYLE if _monochrome else SEVERITY_STYLE).get(severity, "")


def badge(word: str, severity: str) -> Text:
    """A status as glyph + word, readable without colour."""
    return Text(f"{glyph(severity)} {word}", style=style(severity), no_wrap=True, end="")


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
