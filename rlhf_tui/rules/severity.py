"""Severities, defined once: their names, their order (most severe first) and what each means
(MEANINGS). "ok" is the severity of a run whose findings are all low or none: a status's severity, never a
finding's.
"""

from __future__ import annotations

SEVERITIES = ("critical", "high", "medium", "low")
OK = "ok"
PROBLEM = frozenset({"critical", "high"})  # what `n` jumps to and what makes the CLI exit 1
LABELS = {severity: severity.upper() for severity in SEVERITIES}
MEANINGS = {
    "critical": "it is broken (NaN/Inf, a crash, a killed process)",
    "high": "this run is wasting compute: stop it or fix it",
    "medium": "look at this today",
    "low": "worth knowing; never colours a run or changes its status",
}
_RANK = {severity: index for index, severity in enumerate((*SEVERITIES, OK))}


def rank(severity: str) -> int:
    """Sort key: 0 for critical ... 4 for ok; anything unknown last."""
    return _RANK.get(severity, len(_RANK))
