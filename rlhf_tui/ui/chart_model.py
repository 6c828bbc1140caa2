"""Metric charts drawn with plotext: a point budget, TensorBoard-style smoothing, log-y, thresholds.

Everything here works on plain numpy arrays copied out of the run model, so drawing never touches
live data. plotext keeps one global figure: call `render_chart` from one thread only (the UI's).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from rich.style import Style
from rich.text import Text

from rlhf_tui.core.series import downsample
from rlhf_tui.core.display import format_value

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
DEFAULT_SMOOTHING = 0.6
RAW_COLOR = 245
THRESHOLD_COLOR = 196
LINE_COLORS = (39, 208, 41, 170, 51, 220, 99, 203)
MIN_WIDTH = 24
MIN_HEIGHT = 6


def _plotext():
    """plotext, imported when the first chart is drawn (its import is a tenth of the start-up)."""
    import plotext

    plotext.terminal.limit(False, False)
    return plotext


@dataclass
class Line:
    """One metric of one run, finite points only; `nonfinite` counts the NaN/Inf left out."""

    label: str
    x: np.ndarray
    y: np.ndarray
    nonfinite: int = 0


@dataclass
class ChartOptions:
    smoothing: float = DEFAULT_SMOOTHING
    log_y: bool = False
    x_label: str = "step"


@dataclass
class Chart:
    title: str
    lines: list[Line]
    thresholds: list[float] = field(default_factory=list)


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing (an EMA with bias correction), in numpy: a million points in milliseconds.

    Within a block of B points the recurrence s[t] = w*s[t-1] + (1-w)*v[t] is a scaled cumulative
    sum; blocks are chained by carrying s across their edges. B is chosen so that w**-B stays below
    1e6, which keeps the scaled sums accurate.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if weight <= 0 or n == 0:
        return values.copy()
    block = max(1, min(n, int(6 * math.log(10) / -math.log(weight))))
    blocks = -(-n // block)
    padded = np.zeros(blocks * block)
    padded[:n] = values
    grid = padded.reshape(blocks, block)
    offsets = np.arange(block)
    local = (1 - weight) * weight**offsets * np.cumsum(grid * weight ** (-offsets), axis=1)
    # carries[b]: the smoothed numerator just before block b (a short scalar recurrence).
    carries = [0.0] * blocks
    whole = weight**block
    ends = local[:, -1].tolist()
    for b in range(1, blocks):
        carries[b] = carries[b - 1] * whole + ends[b - 1]
    local += np.array(carries)[:, None] * weight ** (offsets + 1)
    return local.reshape(-1)[:n] / (1 - weight ** np.arange(1, n + 1))


def reduce_line(line: Line, budget: int, smoothing: float) -> tuple[Line, Line | None]:
    """The raw line cut to `budget` points (min/max kept) and, when smoothing, the smoothed one."""
    x, y = downsample(line.x, line.y, budget)
    raw = Line(line.label, x, y, line.nonfinite)
    if smoothing <= 0 or len(line.y) < 2:
        return raw, None
    smoothed_y = smooth(line.y, smoothing)
    sx, sy = _even_points(line.x, smoothed_y, budget)
    return raw, Line(line.label, sx, sy)


def _even_points(x: np.ndarray, y: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= budget:
        return x, y
    index = np.unique(np.linspace(0, len(x) - 1, budget).astype(np.int64))
    return x[index], y[index]


def render_chart(chart: Chart, width: int, height: int, options: ChartOptions) -> Text:
    """The chart as text of exactly `height` lines; raw points faint, smoothed line bold."""
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        return Text(chart.title, no_wrap=True, overflow="ellipsis")
    budget = max(16, 2 * width)
    overlay = len(chart.lines) > 1
    drawn: list[tuple[Line, Line | None, int]] = []
    hidden = 0
    for index, line in enumerate(chart.lines):
        if options.log_y:
            keep = line.y > 0
            hidden += int(len(line.y) - np.count_nonzero(keep))
            line = Line(line.label, line.x[keep], line.y[keep], line.nonfinite)
        if len(line.y) == 0:
            continue
        raw, smoothed = reduce_line(line, budget, options.smoothing)
        drawn.append((raw, smoothed, LINE_COLORS[index % len(LINE_COLORS)]))
    if not drawn:
        note = "no positive values for a log scale" if options.log_y and hidden else "no finite values yet"
        return Text(f"{chart.title}\n\n  {note}", no_wrap=True, overflow="ellipsis")

    plotext = _plotext()
    figure = plotext.figure
    figure.clear()
    # Overlaid runs get a legend line under the chart: plotext's own box would hide their start.
    figure.plot_size(width, height - 1 if overlay else height)
    figure.theme("colorless")
    # plotext leaves out a title wider than the chart.
    figure.title(chart.title if len(chart.title) <= width - 2 else chart.title[: width - 3] + "…")
    figure.label(options.x_label, axis="x")
    for raw, smoothed, color in drawn:
        raw_marker = plotext.marker("•", pixel=color if overlay else RAW_COLOR)
        signal = figure.signal(raw.x.tolist(), raw.y.tolist(), marker=raw_marker)
        figure.draw(signal.lines() if overlay and smoothed is None else signal)
        if smoothed is not None:
            smooth_marker = plotext.marker("braille", pixel=(color, None, "bold"))
            figure.draw(figure.signal(smoothed.x.tolist(), smoothed.y.tolist(), marker=smooth_marker).lines())
    for value in chart.thresholds:
        if math.isfinite(value) and (value > 0 or not options.log_y):
            figure.line(value, pixel=THRESHOLD_COLOR, style="dotted")
    lows, highs = zip(*((float(raw.y.min()), float(raw.y.max())) for raw, _, _ in drawn))
    if min(lows) == max(highs):
        _around_constant(figure, min(lows))
    elif options.log_y:
        figure.ruler("y").scale("log")
    text = _plotext_text(figure.build().string().rstrip("\n"))
    if overlay:
        text.append("\n")
        text.append_text(_legend([(raw.label, color) for raw, _, color in drawn], width))
    return text


def _around_constant(figure, value: float) -> None:
    """plotext draws a constant series at 0 on a -1..1 axis: put it mid-chart on a linear axis around
    its value instead (a log axis tells nothing more about one value), labelled with the value."""
    pad = abs(value) / 2 or 1.0
    ruler = figure.ruler("y")
    ruler.lim(value - pad, value + pad)
    ruler.ticks([value], [format_value(value)])


def _legend(entries: list[tuple[str, int]], width: int) -> Text:
    legend = Text(no_wrap=True, overflow="ellipsis", end="")
    for label, color in entries:
        legend.append(" ━ ", style=Style(color=f"color({color})", bold=True))
        legend.append(label)
    legend.truncate(width, overflow="ellipsis")
    return legend


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _plotext_text(rendered: str) -> Text:
    """plotext's output as Text: foreground colours and bold kept, backgrounds dropped so the chart
    sits on the widget's own background. plotext only writes reset, bold and 256-colour codes, so
    this small decoder does the job several times faster than `Text.from_ansi`."""
    text = Text(no_wrap=True, end="")
    styles: dict[tuple[int | None, bool], Style] = {}
    for number, line in enumerate(rendered.split("\n")):
        if number:
            text.append("\n")
        foreground = None
        bold = False
        for index, part in enumerate(_SGR.split(line)):
            if index % 2 == 0:
                if part:
                    style = styles.get((foreground, bold))
                    if style is None:
                        color = None if foreground is None else f"color({foreground})"
                        style = styles[(foreground, bold)] = Style(color=color, bold=bold or None)
                    text.append(part, style)
                continue
            codes = part.split(";")
            position = 0
            while position < len(codes):
                code = codes[position]
                if code in ("", "0"):
                    foreground = None
                    bold = False
                elif code == "1":
                    bold = True
                elif code in ("38", "48") and position + 2 < len(codes) and codes[position + 1] == "5":
                    if code == "38":
                        foreground = int(codes[position + 2])
                    position += 2
                position += 1
    return text
