"""Append-only metric series in numpy, with NaN/Inf accounting and min/max-keeping downsampling."""

from __future__ import annotations

import math

import numpy as np

_INITIAL_CAPACITY = 64


class Series:
    """Steps (int64) and values (float64) of one metric, growing by doubling.

    NaN and Inf are stored as they came and counted; consumers that cannot take them (widgets,
    plotters) use `finite()`.
    """

    __slots__ = ("_steps", "_values", "_size", "nonfinite_count")

    def __init__(self) -> None:
        self._steps = np.empty(_INITIAL_CAPACITY, dtype=np.int64)
        self._values = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
        self._size = 0
        self.nonfinite_count = 0

    def __len__(self) -> int:
        return self._size

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self._size]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self._size]

    @property
    def last_step(self) -> int | None:
        return int(self._steps[self._size - 1]) if self._size else None

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
        if self._size == len(self._steps):
            self._grow(self._size + 1)
        self._steps[self._size] = step
        self._values[self._size] = value
        self._size += 1
        if not math.isfinite(value):
            self.nonfinite_count += 1

    def extend(self, steps: np.ndarray, values: np.ndarray) -> None:
        n = len(steps)
        if not n:
            return
        if self._size + n > len(self._steps):
            self._grow(self._size + n)
        self._steps[self._size : self._size + n] = steps
        self._values[self._size : self._size + n] = values
        self._size += n
        self.nonfinite_count += int(n - np.count_nonzero(np.isfinite(values)))

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * len(self._steps))
        steps = np.empty(capacity, dtype=np.int64)
        values = np.empty(capacity, dtype=np.float64)
        steps[: self._size] = self.steps
        values[: self._size] = self.values
        self._steps, self._values = steps, values

    def finite(self) -> tuple[np.ndarray, np.ndarray]:
        """Steps and values with NaN/Inf removed: what a widget may draw."""
        mask = np.isfinite(self.values)
        return self.steps[mask], self.values[mask]

    def nbytes(self) -> int:
        return self._steps.nbytes + self._values.nbytes


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
