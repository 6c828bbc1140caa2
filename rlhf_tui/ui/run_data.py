"""What the run view shows, copied out of the live runs by a worker thread (never the UI thread).

`prepare` turns runs, their diagnoses and a `RunViewRequest` (which runs, which metric is
highlighted, how many chart slots, step or time axis) into `RunViewData`: plain values the screen
only draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text

from rlhf_tui.core.display import format_value
from rlhf_tui.core.metrics import ROLES
from rlhf_tui.core.run import Run
from rlhf_tui.core.series import Series
from rlhf_tui.core.text import one_line
from rlhf_tui.look import sparkline
from rlhf_tui.rules import Diagnosis
from rlhf_tui.summary import HEADLINE_ROLES
from rlhf_tui.ui.chart_model import Chart, Line
from rlhf_tui.ui.snapshot import spark_values

LIST_SPARK_WIDTH = 10


@dataclass(frozen=True)
class Metric:
    """What a chart shows: a role (the same meaning in every run) or one raw key."""

    id: str
    label: str
    role: str | None = None
    key: str | None = None

    def series(self, run: Run) -> Series | None:
        if self.role:
            return run.role(self.role)
        return run.series(self.key) if self.key else None


@dataclass(frozen=True)
class RunViewRequest:
    paths: tuple[str, ...]
    highlighted: str | None  # metric id under the list's cursor
    slots: int  # how many charts fit
    by_time: bool
    list_size: tuple[int, int, int] | None  # the metric list's (width, height, scrollbar width); None: not wanted


@dataclass(frozen=True)
class RunViewData:
    request: RunViewRequest
    metrics: tuple[Metric, ...]
    entries: tuple[tuple[str, Text], ...] | None  # (metric id, list line), when the list was asked for
    charts: tuple[tuple[Chart, str], ...]  # (chart, x-axis unit)


def prepare(runs: list[Run], diagnoses: list[Diagnosis], request: RunViewRequest) -> RunViewData:
    """Call with the session lock held."""
    names = [one_line(run.name, 60) for run in runs]
    metrics = metrics_of(runs)
    entries = None
    if request.list_size is not None and runs:
        width, height, scrollbar = request.list_size
        if len(metrics) > height:
            width -= scrollbar
        entries = tuple((metric.id, list_entry(metric, runs[0], width)) for metric in metrics)
    charts = tuple(
        collect_chart(runs, diagnoses, names, metric, request.by_time)
        for metric in charted(metrics, request.highlighted, request.slots)
    )
    return RunViewData(request, tuple(metrics), entries, charts)


def metrics_of(runs: list[Run]) -> list[Metric]:
    """Roles first (headline ones, then the rest in catalogue order), then every other raw key."""
    roles = {role for run in runs for role in run.roles}
    ordered = [r for r in HEADLINE_ROLES if r in roles] + [r for r in ROLES if r in roles and r not in HEADLINE_ROLES]
    ordered += sorted(roles.difference(ordered))
    metrics = [Metric(f"role:{role}", role, role=role) for role in ordered]
    charted_keys = {key for run in runs for key in run.roles.values()}
    keys = sorted({key for run in runs for key in run.keys()} - charted_keys)
    metrics += [Metric(f"key:{key}", one_line(key, 80), key=key) for key in keys]
    return metrics


def charted(metrics: list[Metric], highlighted: str | None, slots: int) -> list[Metric]:
    """The highlighted metric first, then headline roles, as many as there are chart slots."""
    if not metrics:
        return []
    by_id = {metric.id: metric for metric in metrics}
    chosen = [by_id.get(highlighted, metrics[0]) if highlighted else metrics[0]]
    for role in HEADLINE_ROLES + tuple(ROLES):
        if len(chosen) >= slots:
            break
        metric = by_id.get(f"role:{role}")
        if metric is not None and metric not in chosen:
            chosen.append(metric)
    return chosen[:slots]


def list_entry(metric: Metric, run: Run, width: int) -> Text:
    """`label  sparkline  last value` in `width` cells (the value goes first when narrow)."""
    series = metric.series(run)
    with_value = width >= 36
    label_width = max(6, width - LIST_SPARK_WIDTH - 1 - (10 if with_value else 0))
    label = metric.label
    raw_key = run.roles.get(metric.role) if metric.role else None
    if raw_key is not None and raw_key != metric.role:
        label += f" ({one_line(raw_key, 40)})"
    if len(label) > label_width:
        label = label[: label_width - 1] + "…"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{label:<{label_width}} ", style="bold" if metric.role else "")
    text.append(sparkline(spark_values(series, LIST_SPARK_WIDTH)).ljust(LIST_SPARK_WIDTH), style="cyan")
    if with_value:
        last = series.last_finite() if series is not None else None
        text.append(f" {format_value(last):>9}")
    return text


def _elapsed_axis(runs: list[Run]) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, float, str]:
    """Per run (time steps, elapsed seconds), a divisor and a unit; None when a run has no times."""
    mappings = []
    longest = 0.0
    for run in runs:
        steps, values = run.times.finite()
        if len(steps) == 0:
            return None, 1.0, "step"
        elapsed = values - values[0]
        longest = max(longest, float(elapsed[-1]))
        mappings.append((steps.astype(np.float64), elapsed))
    if longest < 120:
        return mappings, 1.0, "seconds"
    if longest < 2 * 3600:
        return mappings, 60.0, "minutes"
    return mappings, 3600.0, "hours"


def collect_chart(
    runs: list[Run], diagnoses: list[Diagnosis], names: list[str], metric: Metric, by_time: bool
) -> tuple[Chart, str]:
    """One chart's lines (copies), thresholds of active findings and title."""
    mappings, divisor, unit = _elapsed_axis(runs) if by_time else (None, 1.0, "step")
    lines = []
    thresholds = []
    nonfinite = 0
    last = None
    kept = appended = 0
    for index, (run, diagnosis) in enumerate(zip(runs, diagnoses)):
        series = metric.series(run)
        if series is None:
            continue
        kept, appended = kept + len(series), appended + series.appended
        steps, values = series.finite()
        x = steps.astype(np.float64)
        if mappings is not None:
            time_steps, elapsed = mappings[index]
            x = np.interp(x, time_steps, elapsed) / divisor
        lines.append(Line(names[index], x, values.copy(), series.nonfinite_count))
        nonfinite += series.nonfinite_count
        if last is None and len(values):
            last = (float(values[-1]), int(steps[-1]))
        if metric.role:
            thresholds += [
                float(f.threshold.value)
                for f in diagnosis.active
                if f.threshold is not None and f.threshold.role == metric.role
            ]
    title = metric.label
    if len(runs) == 1 and last is not None:
        title += f" · last {format_value(last[0])} @ step {last[1]}"
    elif len(runs) > 1:
        title += f" · {len(lines)} of {len(runs)} runs"
    if nonfinite:
        title += f" · {nonfinite} NaN/Inf not drawn"
    if kept < appended:  # a key no role is read from, decimated (core/run.py)
        title += f" · decimated: {kept:,} of {appended:,} points kept, min/max of each stretch"
    if by_time and mappings is None:
        title += " · no wall times logged: by step"
    return Chart(title, lines, thresholds), unit
