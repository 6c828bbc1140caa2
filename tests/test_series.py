"""Series that share a step axis hold exactly what series of their own hold, whatever steps they get,
one at a time or in arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.core.series import Series, StepAxis


@st.composite
def appends(draw) -> list[tuple[int, list[int]]]:
    """(series number, steps) appends: mostly the same steps for every series, sometimes not."""
    out = []
    step = 0
    for _ in range(draw(st.integers(1, 40))):
        n = draw(st.sampled_from((1, 1, 2, 50)))
        steps = list(range(step + 1, step + n + 1))
        step += n
        for series in draw(st.permutations(range(3))):
            if draw(st.integers(0, 9)) == 0:  # this one logs other steps (every other, or skips)
                out.append((series, steps[:: draw(st.integers(2, 3))]))
            elif draw(st.integers(0, 9)):
                out.append((series, steps))
    return out


@settings(max_examples=examples(200), deadline=None)
@given(appends())
def test_series_on_one_axis_hold_what_series_of_their_own_hold(plan):
    axis = StepAxis()
    shared = [Series(axis) for _ in range(3)]
    alone = [Series() for _ in range(3)]
    for series, steps in plan:
        values = np.array(steps, dtype=np.float64) / 7
        values[::5] = np.nan
        alone[series].extend(np.array(steps, dtype=np.int64), values)
        if len(steps) == 1:  # a live step
            shared[series].append(steps[0], float(values[0]))
        else:
            shared[series].extend(np.array(steps, dtype=np.int64), values)
    for a, b in zip(shared, alone):
        assert a.steps.tolist() == b.steps.tolist() and a.values.tobytes() == b.values.tobytes()
        assert a.nonfinite_count == b.nonfinite_count and a.last_step == b.last_step


def test_keys_logged_together_keep_their_steps_once():
    axis = StepAxis()
    keys = [Series(axis) for _ in range(10)]
    steps = np.arange(1, 10001, dtype=np.int64)
    for series in keys:
        series.extend(steps, np.ones(len(steps)))
    assert axis.size == 10000
    assert sum(series.nbytes() for series in keys) + axis.buffer.nbytes < 10 * 10000 * 9
