"""Window features over one role (last, mean, std, min, max, baseline, nonfinite), kept
incrementally per run in a `RoleWindow` so a new point costs O(1) per feature."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np


class Feature(NamedTuple):
    """A statistic of one role at every point: kind is last, mean, std, min, max, baseline or nonfinite."""

    kind: str
    role: str
    window: int = 1
    lag: int = 0

    @property
    def lookback(self) -> int:
        """How many earlier points of the role this feature needs."""
        if self.kind == "baseline":
            return 0
        if self.kind == "last":
            return self.lag
        return self.window + self.lag - 1


class RoleWindow:
    """The incremental state of one role for all the features over it.

    State is O(longest window): running totals (count, sum, sum of squares of finite values,
    non-finite count) carried as prefix sums, the last few prefix sums and values, and the baseline
    accumulators. Totals are accumulated strictly in order (numpy's cumsum is sequential), so
    feeding the same points in any split gives bit-identical results. For consecutive points the
    window sums are differences of prefix-sum slices at fixed offsets, so one new point costs a
    fixed number of numpy calls per feature. Values are centered on the role's first finite value;
    a std from sums of squares loses relative precision only for spreads around 1e-6 of the
    values' distance from it.
    """

    def __init__(self, features: Iterable[Feature]) -> None:
        self.features = tuple(sorted(set(features), key=repr))
        self.keep = max((feature.lookback for feature in self.features), default=0)
        self.count = 0
        self.latest: dict[Feature, float] = dict.fromkeys(self.features, math.nan)
        self._center: float | None = None
        self._values = np.empty(0)
        self._baselines = {f: [0, 0.0, math.nan] for f in self.features if f.kind == "baseline"}
        self._summed = [f for f in self.features if f.kind in ("mean", "std", "nonfinite")]
        kinds = {f.kind for f in self._summed}
        # Running totals of finite points, their (centered) sum, their squares, non-finite points;
        # only the quantities some feature needs.
        self._quantities = ("count", "sum") + ("squares",) * ("std" in kinds) + ("bad",) * ("nonfinite" in kinds)
        # Prefix totals E[g] over points 0..g-1, one row per quantity, for the last keep + 1
        # values of g up to count. E[g] = 0 for g <= 0: the zero columns before the first point
        # make early windows partial sums (what nonfinite() wants; window statistics are masked).
        self._prefix = np.zeros((len(self._quantities), self.keep + 1))

    def advance(self, values: np.ndarray) -> dict[Feature, np.ndarray]:
        """Consume new points; return each feature's value at each of them."""
        with np.errstate(all="ignore"):
            return self._advance(np.asarray(values, dtype=np.float64))

    def _advance(self, values: np.ndarray) -> dict[Feature, np.ndarray]:
        m = len(values)
        first = self.count
        finite = np.isfinite(values)
        history = np.concatenate((self._values, values)) if self.keep else values
        history_origin = first - len(self._values)
        ends = np.arange(first, first + m)

        if self._summed:
            if self._center is None and finite.any():
                self._center = float(values[finite][0])
            center = self._center or 0.0
            centered = np.where(finite, values - center, 0.0)
            increments = np.empty((len(self._quantities), m + 1))
            increments[:, 0] = self._prefix[:, -1]
            increments[0, 1:] = finite
            increments[1, 1:] = centered
            if "squares" in self._quantities:
                increments[2, 1:] = centered * centered
            if "bad" in self._quantities:
                increments[-1, 1:] = ~finite
            prefix = np.concatenate((self._prefix, np.cumsum(increments, axis=1)[:, 1:]), axis=1)
            # Window sums are differences of prefix columns; for consecutive points those are
            # contiguous slices at fixed offsets from the column of E[first + 1].
            table = dict(zip(self._quantities, prefix))
            base = self._prefix.shape[1]

        out: dict[Feature, np.ndarray] = {}
        extremes: dict[tuple[str, int], np.ndarray] = {}
        for feature in self.features:
            if feature.kind in ("mean", "std", "nonfinite"):
                stop = base - feature.lag  # the prefix column just after each window
                start = stop - feature.window
                if feature.kind == "nonfinite":
                    result = _window_totals(table["bad"], start, stop, m)
                else:
                    n = _window_totals(table["count"], start, stop, m)
                    sums = _window_totals(table["sum"], start, stop, m)
                    full = ends >= feature.window + feature.lag - 1
                    if feature.kind == "mean":
                        result = np.where(full & (n > 0), sums / n + center, np.nan)
                    else:
                        squares = _window_totals(table["squares"], start, stop, m)
                        variance = np.maximum(squares - sums * sums / n, 0.0) / (n - 1)
                        result = np.where(full & (n > 1), np.sqrt(variance), np.nan)
            elif feature.kind == "baseline":
                result = self._baseline(feature, values, finite)
            elif feature.kind == "last" and feature.lag == 0:
                result = values
            elif feature.kind == "last":
                at = ends - feature.lag
                result = np.where(at >= 0, history[np.maximum(at - history_origin, 0)], np.nan)
            else:
                key = (feature.kind, feature.window)
                if key not in extremes:
                    extremes[key] = _rolling_extreme(history, feature.window, feature.kind)
                begin = ends - feature.lag - feature.window + 1
                rolled = extremes[key][np.maximum(begin - history_origin, 0)]
                result = np.where((begin >= 0) & np.isfinite(rolled), rolled, np.nan)
            out[feature] = result
            if m:
                self.latest[feature] = float(result[-1])

        self.count += m
        # Copies: a view would keep the whole backlog's arrays alive for as long as the run is followed.
        if self._summed:
            self._prefix = prefix[:, -(self.keep + 1) :].copy()
        self._values = history[max(len(history) - self.keep, 0) :].copy() if self.keep else self._values
        return out

    def _baseline(self, feature: Feature, values: np.ndarray, finite: np.ndarray) -> np.ndarray:
        state = self._baselines[feature]  # [finite points seen, their sum, the baseline once known]
        out = np.full(len(values), state[2])
        if not math.isnan(state[2]):
            return out
        positions = np.flatnonzero(finite)
        needed = feature.window - state[0]
        taken = positions[:needed]
        if len(taken):
            state[1] = float(np.cumsum(np.concatenate(([state[1]], values[taken])))[-1])
            state[0] += len(taken)
        if state[0] == feature.window:
            state[2] = state[1] / feature.window
            out[taken[-1] :] = state[2]
        return out


def _window_totals(prefix: np.ndarray, start: int, stop: int, m: int) -> np.ndarray:
    """Totals over the windows of m consecutive points, from prefix sums at fixed offsets."""
    return prefix[stop : stop + m] - prefix[start : start + m]


def _rolling_extreme(values: np.ndarray, window: int, kind: str) -> np.ndarray:
    """Min or max of every window of `window` consecutive values, by start index (van Herk/Gil-Werman).

    Non-finite values are skipped; a window with none finite gives +-inf.
    """
    fill = np.inf if kind == "min" else -np.inf
    ufunc = np.minimum if kind == "min" else np.maximum
    x = np.where(np.isfinite(values), values, fill)
    n = len(x)
    if n < window:
        return np.full(1, fill)
    # One column per block of `window` values, so each running extreme is `window` vector steps.
    blocks = np.concatenate((x, np.full((-n) % window, fill))).reshape(-1, window).T
    forward = ufunc.accumulate(blocks, axis=0).T.ravel()
    backward = ufunc.accumulate(blocks[::-1], axis=0)[::-1].T.ravel()
    return ufunc(backward[: n - window + 1], forward[window - 1 : n])
