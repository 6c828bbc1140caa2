"""Append-only metric series in numpy (steps shared between the keys of a source), with NaN/Inf
accounting and min/max-keeping downsampling."""

from __future__ import annotations

import math

import numpy as np

_INITIAL_CAPACITY = 64


class StepAxis:
    """Steps that several series of one source share while each holds a value at every one of them:
    a log that writes all its keys at every step keeps its steps once, not once per key."""

    __slots__ = ("buffer", "size")

    def __init__(self) -> None:
        self.buffer = np.empty(_INITIAL_CAPACITY, dtype=np.int64)
        self.size = 0

    def extend(self, steps: np.ndarray) -> None:
        n = len(steps)
        if self.size + n > len(self.buffer):
            self.buffer = _grown(self.buffer, self.size, self.size + n)
        self.buffer[self.size : self.size + n] = steps
        self.size += n

    def append(self, step: int) -> None:
        if self.size == len(self.buffer):
            self.buffer = _grown(self.buffer, self.size, self.size + 1)
        self.buffer[self.size] = step
        self.size += 1


class Series:
    """Steps (int64) and values (float64) of one metric, growing by doubling.

    NaN and Inf are stored as they came and counted; consumers that cannot take them (widgets,
    plotters) use `finite()`. Given an axis, the series keeps its steps there for as long as they
    are the axis' first steps, and a copy of its own from the first step that differs.
    """

    __slots__ = ("_steps", "_values", "_size", "_axis", "nonfinite_count", "appended")

    def __init__(self, axis: StepAxis | None = None) -> None:
        self._axis = axis
        self._steps = np.empty(0 if axis is not None else _INITIAL_CAPACITY, dtype=np.int64)
        self._values = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self._size = 0
        self.nonfinite_count = 0
        self.appended = 0  # points ever appended: more than it holds once decimated

    def __len__(self) -> int:
        return self._size

    @property
    def steps(self) -> np.ndarray:
        if self._axis is not None:
            return self._axis.buffer[: self._size]
        return self._steps[: self._size]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._size]

    @property
    def last_step(self) -> int | None:
        return int(self.steps[-1]) if self._size else None

    @property
    def last(self) -> float | None:
        return float(self._values[self._size - 1]) if self._size else None

    def last_finite(self) -> float | None:
        values = self.values
        if self._size and math.isfinite(values[-1]):
            return float(values[-1])
        finite = np.flatnonzero(np.isfinite(values))
        return float(values[finite[-1]]) if finite.size else None

    def append(self, step: int, value: float) -> None:
        """One point, without making arrays of it: a live step appends one point to each key."""
        size = self._size
        axis = self._axis
        if axis is not None:
            if size == axis.size:
                axis.append(step)
            elif size > axis.size or axis.buffer[size] != step:
                self._leave_axis()
        if self._axis is None:
            if size == len(self._steps):
                self._steps = _grown(self._steps, size, size + 1)
            self._steps[size] = step
        if size == len(self._values):
            self._values = _grown(self._values, size, size + 1)
        self._values[size] = value
        self._size = size + 1
        self.appended += 1
        if not math.isfinite(value):
            self.nonfinite_count += 1

    def extend(self, steps: np.ndarray, values: np.ndarray) -> None:
        n = len(steps)
        if not n:
            return
        if self._axis is not None and not self._follows_axis(steps):
            self._leave_axis()
        if self._axis is None:
            if self._size + n > len(self._steps):
                self._steps = _grown(self._steps, self._size, self._size + n)
            self._steps[self._size : self._size + n] = steps
        if self._size + n > len(self._values):
            self._values = _grown(self._values, self._size, self._size + n)
        self._values[self._size : self._size + n] = values
        self._size += n
        self.appended += n
        self.nonfinite_count += int(n - np.count_nonzero(np.isfinite(values)))

    def _follows_axis(self, steps: np.ndarray) -> bool:
        """Whether these steps are (or now become) the axis' next ones after this series' last."""
        axis = self._axis
        assert axis is not None
        if self._size == axis.size:
            axis.extend(steps)
            return True
        end = self._size + len(steps)
        return end <= axis.size and bool(np.array_equal(axis.buffer[self._size : end], steps))

    def _leave_axis(self) -> None:
        assert self._axis is not None
        self._steps = np.empty(max(2 * self._size, _INITIAL_CAPACITY), dtype=np.int64)
        self._steps[: self._size] = self._axis.buffer[: self._size]
        self._axis = None

    def decimate(self, points: int) -> None:
        """Keep about `points` of its finite points for good: each bucket's min and max, as
        `downsample` picks them (NaN/Inf stay counted)."""
        steps, values = downsample(*self.finite(), points)
        self._axis = None
        self._size = len(steps)
        self._steps = np.empty(max(2 * self._size, _INITIAL_CAPACITY), dtype=np.int64)
        self._values = np.empty(len(self._steps), dtype=np.float64)
        self._steps[: self._size] = steps
        self._values[: self._size] = values

    def finite(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values with NaN/Inf removed: what a widget may draw."""
        mask = np.isfinite(self.values)
        return self.steps[mask], self.values[mask]

    def nbytes(self) -> int:
        """Bytes of its own (steps on an axis are counted with the axis)."""
        return self._steps.nbytes + self._values.nbytes


def _grown(array: np.ndarray, size: int, needed: int) -> np.ndarray:
    grown = np.empty(max(needed, 2 * len(array)), dtype=array.dtype)
    grown[:size] = array[:size]
    return grown


def downsample(x: np.ndarray, y: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """At most about `budget` points keeping each bucket's min and max (finite `y`), so spikes survive."""
    n = len(x)
    if n <= budget or budget < 4:
        return x, y
    buckets = budget // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    bucket = np.repeat(np.arange(buckets), np.diff(edges))
    kept = [np.array([0, n - 1])]
    for extreme in (np.minimum, np.maximum):
        per_bucket = extreme.reduceat(y, edges[:-1])
        candidates = np.flatnonzero(y == per_bucket[bucket])
        _, first = np.unique(bucket[candidates], return_index=True)  # the first of each bucket, as argmin does
        kept.append(candidates[first])
    index = np.unique(np.concatenate(kept))
    return x[index], y[index]
