"""The run view: charts of one run's metrics, or of several runs overlaid, and every raw key."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, OptionList, Static

from rlhf_tui.core.metrics import ROLES
from rlhf_tui.core.run import Run
from rlhf_tui.core.series import Series
from rlhf_tui.core.summary import HEADLINE_ROLES, format_step, format_value
from rlhf_tui.ui.chart import SMOOTHING_STEPS, Chart, ChartOptions, Line
from rlhf_tui.ui.look import badge, sparkline
from rlhf_tui.ui.snapshot import spark_values
from rlhf_tui.core.text import one_line
from rlhf_tui.ui.widgets.charts import ChartView, MetricList

MAX_CHARTS = 4
WIDE_CHARTS = 140  # from this width, two charts side by side
TALL_CHARTS = 40  # from this height, two rows of charts
REDRAW_SECONDS = 1.0  # live data redraws charts at most this often
LIST_SPARK_WIDTH = 10


@dataclass(frozen=True)
class Metric:
    """What a chart shows: a role (the same meaning in every run) or one raw key."""

    id: str
    label: str
    role: str | None = None
    key: str | None = None

    def series(self, run: Run) -> Series | None:
        return run.role(self.role) if self.role else run.series(self.key)


def metrics_of(runs: list[Run]) -> list[Metric]:
    """Roles first (headline ones, then the rest in catalogue order), then every other raw key."""
    roles = {role for run in runs for role in run.roles}
    ordered = [r for r in HEADLINE_ROLES if r in roles] + [r for r in ROLES if r in roles and r not in HEADLINE_ROLES]
    ordered += sorted(roles.difference(ordered))
    metrics = [Metric(f"role:{role}", role, role=role) for role in ordered]
    charted = {key for run in runs for key in run.roles.values()}
    keys = sorted({key for run in runs for key in run.keys()} - charted)
    metrics += [Metric(f"key:{key}", one_line(key, 80), key=key) for key in keys]
    return metrics


def _elapsed_axis(runs: list[Run]) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, float, str]:
    """Per run (time steps, elapsed seconds), a divisor and a unit; None when a run has no times."""
    mappings = []
    longest = 0.0
    for run in runs:
        times = run.times
        if len(times) == 0:
            return None, 1.0, "step"
        steps, values = times.finite()
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


def collect_chart(runs: list[Run], names: list[str], metric: Metric, by_time: bool) -> tuple[Chart, str]:
    """Copy what one chart needs out of the live runs (hold the session lock)."""
    mappings, divisor, unit = _elapsed_axis(runs) if by_time else (None, 1.0, "step")
    lines = []
    thresholds = []
    nonfinite = 0
    last = None
    for index, run in enumerate(runs):
        series = metric.series(run)
        if series is None:
            continue
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
            for finding in run.findings:
                threshold = finding.threshold
                if finding.active and threshold is not None and threshold.role == metric.role:
                    thresholds.append(float(threshold.value))
    title = metric.label
    if len(runs) == 1 and last is not None:
        title += f" · last {format_value(last[0])} @ step {last[1]}"
    elif len(runs) > 1:
        title += f" · {len(lines)} of {len(runs)} runs"
    if nonfinite:
        title += f" · {nonfinite} NaN/Inf not drawn"
    if by_time and mappings is None:
        title += " · no wall times logged: by step"
    return Chart(title, lines, thresholds), unit


class RunScreen(Screen):
    BINDING_GROUP_TITLE = "run view"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("x", "toggle_time", "Step/time", tooltip="x axis by step or by wall time"),
        Binding("l", "toggle_log", "Log y"),
        Binding("plus,equals_sign,right_square_bracket", "smoothing(1)", "Smooth +", key_display="+"),
        Binding("minus,left_square_bracket", "smoothing(-1)", "Smooth -", key_display="-"),
    ]

    def __init__(self, paths: list[str]) -> None:
        super().__init__(id="run-view")
        self.paths = paths
        self.options = ChartOptions()
        self.by_time = False
        self.metrics: list[Metric] = []
        self._last_draw = 0.0
        self._pending: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="run-title")
        with Horizontal(id="run-body"):
            yield MetricList(id="metrics")
            with Grid(id="charts"):
                for index in range(MAX_CHARTS):
                    yield ChartView(id=f"chart-{index}")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(MetricList).focus()
        self.redraw()

    def selected_run_path(self) -> str | None:
        return self.paths[0]

    # --- live data --------------------------------------------------------------------------

    def runs_changed(self, paths: set[str]) -> None:
        """Some runs changed: redraw if ours did, at most once per REDRAW_SECONDS."""
        if not paths.intersection(self.paths) or self._pending is not None:
            return
        wait = self._last_draw + REDRAW_SECONDS - time.monotonic()
        if wait <= 0:
            self.redraw()
        else:
            self._pending = self.set_timer(wait, self._redraw_later)

    def _redraw_later(self) -> None:
        self._pending = None
        self.redraw()

    def redraw(self, metric_list: bool = True) -> None:
        """Copy the data out under the lock, then draw; `metric_list` also refreshes the key list."""
        self._last_draw = time.monotonic()
        loop = self.app.loop
        slots = self._slots()
        with loop.lock:
            runs = [run for run in (loop.run_by_path(path) for path in self.paths) if run is not None]
            if not runs:
                return
            names = [one_line(run.name, 60) for run in runs]
            if metric_list or not self.metrics:
                self.metrics = metrics_of(runs)
                width = self.query_one(MetricList).scrollable_content_region.width
                entries = [(metric.id, self._entry(metric, runs[0], width)) for metric in self.metrics]
            charted = self._charted(slots)
            charts = [collect_chart(runs, names, metric, self.by_time) for metric in charted]
        if metric_list:
            self.query_one(MetricList).set_metrics(entries)
        for index, view in enumerate(self.query(ChartView)):
            view.display = index < len(charts)
            if index < len(charts):
                chart, unit = charts[index]
                view.show(chart, ChartOptions(self.options.smoothing, self.options.log_y, unit))
        self._update_title()

    def _entry(self, metric: Metric, run: Run, width: int) -> Text:
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

    def _charted(self, slots: int) -> list[Metric]:
        """The highlighted metric first, then headline roles, as many as there are chart slots."""
        if not self.metrics:
            return []
        option = self.query_one(MetricList).highlighted_option
        by_id = {metric.id: metric for metric in self.metrics}
        first = by_id.get(option.id) if option is not None else None
        first = first or self.metrics[0]
        chosen = [first]
        for role in HEADLINE_ROLES + tuple(ROLES):
            if len(chosen) >= slots:
                break
            metric = by_id.get(f"role:{role}")
            if metric is not None and metric not in chosen:
                chosen.append(metric)
        return chosen[:slots]

    def _slots(self) -> int:
        width, height = self.size
        columns = 2 if width >= WIDE_CHARTS else 1
        rows = 2 if height >= TALL_CHARTS else 1
        grid = self.query_one("#charts", Grid)
        grid.styles.grid_size_columns = columns
        grid.styles.grid_size_rows = rows
        return columns * rows

    def _update_title(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        snapshots = self.app.snapshots
        if len(self.paths) == 1:
            snapshot = snapshots.get(self.paths[0])
            if snapshot is not None:
                text.append(snapshot.name, style="bold")
                text.append(f"  {snapshot.trainer}  ")
                text.append_text(badge(snapshot.status, snapshot.severity))
                text.append(f"  step {format_step(snapshot.step, snapshot.max_steps)}")
        else:
            names = [snapshots[p].name for p in self.paths if p in snapshots]
            text.append(f"{len(self.paths)} runs overlaid: ", style="bold")
            text.append(", ".join(names))
        smoothing = f"{self.options.smoothing:g}" if self.options.smoothing else "off"
        text.append(
            f"   x: {'time' if self.by_time else 'step'} · smoothing {smoothing} · log y {'on' if self.options.log_y else 'off'}",
            style="dim",
        )
        self.query_one("#run-title", Static).update(text)

    # --- events and actions -----------------------------------------------------------------

    @on(OptionList.OptionHighlighted, "#metrics")
    def _metric_highlighted(self) -> None:
        self.redraw(metric_list=False)

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < 120, "-narrow")
        self.call_after_refresh(self.redraw)  # once the metric list has its new width

    def action_back(self) -> None:
        self.dismiss()

    def action_toggle_time(self) -> None:
        self.by_time = not self.by_time
        self.redraw(metric_list=False)

    def action_toggle_log(self) -> None:
        self.options.log_y = not self.options.log_y
        self.redraw(metric_list=False)

    def action_smoothing(self, direction: int) -> None:
        steps = SMOOTHING_STEPS
        current = min(range(len(steps)), key=lambda i: abs(steps[i] - self.options.smoothing))
        self.options.smoothing = steps[max(0, min(len(steps) - 1, current + direction))]
        self.redraw(metric_list=False)
