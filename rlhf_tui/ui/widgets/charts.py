"""The chart widget and the metric list of the run view."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from rlhf_tui.ui.chart_model import Chart, ChartOptions, render_chart


class ChartView(Widget):
    """One plotext chart, drawn again only when its data, options or size change."""

    DEFAULT_CSS = """
    ChartView { height: 1fr; width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chart: Chart | None = None
        self.options = ChartOptions()
        self._drawn: tuple[int, int, int] | None = None
        self._text = Text()
        self._generation = 0

    def show(self, chart: Chart | None, options: ChartOptions) -> None:
        self.chart = chart
        self.options = options
        self._generation += 1
        self.refresh()

    def render(self) -> Text:
        if self.chart is None:
            return Text()
        width, height = self.content_size
        key = (width, height, self._generation)
        if key != self._drawn:
            try:
                self._text = render_chart(self.chart, width, height, self.options)
            except Exception as exc:  # noqa: BLE001 - a plotting bug must not take the app down
                self._text = Text(f"{self.chart.title}\n\ncannot draw this chart: {type(exc).__name__}: {exc}")
            self._drawn = key
        return self._text


class MetricList(OptionList):
    """Every metric of the run (roles first, then raw keys), each with a sparkline and last value."""

    def set_metrics(self, entries: list[tuple[str, Text]]) -> None:
        """entries: (metric id, prompt). The list is rebuilt only when the ids change."""
        ids = [option.id for option in self.options]
        if ids == [metric for metric, _ in entries]:
            for metric, prompt in entries:
                self.replace_option_prompt(metric, prompt)
            return
        highlighted = self.highlighted_option.id if self.highlighted_option is not None else None
        self.set_options(Option(prompt, id=metric) for metric, prompt in entries)
        if highlighted is not None and highlighted in {metric for metric, _ in entries}:
            self.highlighted = self.get_option_index(highlighted)
        elif entries:
            self.highlighted = 0
