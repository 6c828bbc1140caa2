"""Timestamps in metric logs: unix seconds from a number or ISO-8601 text, one at a time or in bulk."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

_last_minute: tuple[str, float] = ("", 0.0)  # one tuple, replaced whole: safe to read from any thread


def parse_time(value: Any) -> float | None:
    """Unix seconds from a number or an ISO-8601 string.

    Log lines repeat the same date, hour and minute, so the common UTC shape
    `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` is the cached start of its minute plus the seconds.
    """
    global _last_minute
    if isinstance(value, str):
        if len(value) == 32 and value[19] == "." and value.endswith("+00:00"):
            minute = value[:17]
            cached, base = _last_minute
            if minute != cached:
                try:
                    base = datetime.fromisoformat(minute + "00+00:00").timestamp()
                except ValueError:
                    return None
                _last_minute = (minute, base)
            try:
                return base + float(value[17:26])
            except ValueError:
                return None
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def parse_times(stamps: list[str]) -> np.ndarray:
    """Unix seconds of timestamps, NaN where a text is not one: `parse_time` of each.

    PTT's `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` is done in bulk the way parse_time does it: the start of
    the minute (worked out once per stretch of one minute) plus the seconds, the same floats."""
    text = np.array(stamps)
    if text.dtype == np.dtype("<U32") and len(stamps):
        codes = text.view(np.uint32).reshape(len(stamps), 32)
        fixed = codes[:, _FIXED_COLUMNS] == _FIXED_CODES
        digits = codes[:, _DIGIT_COLUMNS] - ord("0")
        if bool(fixed.all()) and bool((digits <= 9).all()):
            minutes = text.astype("<U17")
            change = np.flatnonzero(minutes[1:] != minutes[:-1]) + 1
            firsts = np.concatenate(([0], change))
            starts = np.array([_minute_start(str(minutes[i])) for i in firsts.tolist()], dtype=np.float64)
            base = np.repeat(starts, np.diff(np.append(firsts, len(stamps))))
            micros = np.zeros(len(stamps), dtype=np.int64)
            for column in range(digits.shape[1]):
                micros = micros * 10 + digits[:, column]
            return base + micros / 1e6
    return np.array([np.nan if (t := parse_time(s)) is None else t for s in stamps], dtype=np.float64)


_FIXED = {19: ".", 26: "+", 27: "0", 28: "0", 29: ":", 30: "0", 31: "0"}
_FIXED_COLUMNS = list(_FIXED)
_FIXED_CODES = np.array([ord(char) for char in _FIXED.values()], dtype=np.uint32)
_DIGIT_COLUMNS = [17, 18, 20, 21, 22, 23, 24, 25]  # SS and ffffff


def _minute_start(minute: str) -> float:
    start = parse_time(minute + "00.000000+00:00")
    return np.nan if start is None else start
