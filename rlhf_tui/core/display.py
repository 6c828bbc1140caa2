"""How numbers read, the same everywhere (run table, `--once`, report, status lines, charts)."""

from __future__ import annotations


def format_value(value: float | None) -> str:
    """A metric value in at most about 9 characters: 4 significant digits, or scientific when tiny/huge."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.2e}"
    return f"{value:.4g}"


def format_step(step: int | None, max_steps: int | None) -> str:
    if step is None:
        return "-"
    return f"{step}/{max_steps}" if max_steps else str(step)


def format_duration(seconds: float) -> str:
    """A duration in words a person reads at a glance: "45 s", "30 min", "4.0 h", "73 days"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def format_age(seconds: float | None) -> str:
    """The same, compact, for a narrow column: "45s", "30m", "4.0h", "73.0d"."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_config_value(value: object) -> str:
    """A configuration value as it was logged: a float in its shortest exact form (1e-05, not 1.00e-05)."""
    return repr(value) if isinstance(value, float) else str(value)
