"""The run view: charts of one run's metrics, or of several runs overlaid, and every raw key."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from rlhf_tui.core.display import format_step
from rlhf_tui.ui.chart_model import SMOOTHING_STEPS, ChartOptions
from rlhf_tui.ui.messages import RunViewReady
from rlhf_tui.ui.pacing import Pacer
from rlhf_tui.ui.run_data import Metric, RunViewRequest
from rlhf_tui.ui.widgets.charts import ChartView, MetricList

MAX_CHARTS = 4
WIDE_CHARTS = 140  # from this width, two charts side by side
TALL_CHARTS = 40  # from this height, two rows of charts
REDRAW_SECONDS = 1.0  # live data redraws charts at most this often


class RunScreen(Screen):
    BINDING_GROUP_TITLE = "run view"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("i", "config", "Config", tooltip="The configuration of these runs (of several: what differs)"),
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
        self._pacer = Pacer(self, REDRAW_SECONDS, self.redraw)
        self._asked: RunViewRequest | None = None
        self.drawn = False  # the answer to the latest request is on screen

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
        if paths.intersection(self.paths):
            self._pacer.request()

    def redraw(self, metric_list: bool = True) -> None:
        """Ask a worker for the charts (and, with `metric_list`, the metric list) of these runs."""
        self._pacer.ran()
        metric_list = metric_list or not self.metrics
        listing = self.query_one(MetricList)
        option = listing.highlighted_option
        inner = listing.region.shrink(listing.styles.gutter)  # inside the border, before any scrollbar
        request = RunViewRequest(
            paths=tuple(self.paths),
            highlighted=option.id if option is not None else None,
            slots=self._slots(),
            by_time=self.by_time,
            list_size=(inner.width, inner.height, listing.styles.scrollbar_size_vertical) if metric_list else None,
        )
        self._asked = request
        self.drawn = False
        self.app.prepare_run_view(self, request)

    @on(RunViewReady)
    def _draw(self, message: RunViewReady) -> None:
        data = message.data
        if data.request is not self._asked:
            return  # an answer to an earlier question (another width, another metric)
        self.metrics = list(data.metrics)
        if data.entries is not None:
            self.query_one(MetricList).set_metrics(list(data.entries))
        for index, view in enumerate(self.query(ChartView)):
            view.display = index < len(data.charts)
            if index < len(data.charts):
                chart, unit = data.charts[index]
                view.show(chart, ChartOptions(self.options.smoothing, self.options.log_y, unit))
        self._update_title()
        self.drawn = True

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
                text.append_text(self.app.look.badge(snapshot.status, snapshot.severity))
                text.append(f"  step {format_step(snapshot.step, snapshot.max_steps)}")
                if snapshot.loading:
                    text.append("  … history loading: the last steps only", style="italic")
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

    def action_config(self) -> None:
        self.app.open_config(self.paths)

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
