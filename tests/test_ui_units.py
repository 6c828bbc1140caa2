"""The TUI's pure helpers: untrusted text, sparklines, smoothing, charts, table layout, filters."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from rlhf_tui.core.series import Series
from rlhf_tui.ui.chart_model import Chart, ChartOptions, Line, _plotext_text, render_chart, smooth
from rlhf_tui.look import SPARK_BLOCKS, progress_bar, sparkline
from rlhf_tui.ui.snapshot import SPARK_SAMPLE, RunSnapshot, spark_values
from rlhf_tui.core.text import block, one_line
from rlhf_tui.report import is_inside
from rlhf_tui.ui.app import default_report_path
from rlhf_tui.ui.widgets.runs_table import COLUMNS, MARK_WIDTH, layout, matches, parse_filter, sort_key

HOSTILE = "run[lr=1e-5] [/bold] \x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]52;c;ZXZpbA==\x07 bell\x07 \u202eevil\r\nnext"


def test_one_line_removes_escapes_controls_and_breaks():
    cleaned = one_line(HOSTILE)
    assert "\x1b" not in cleaned and "\x07" not in cleaned and "\u202e" not in cleaned
    assert "\n" not in cleaned and "\r" not in cleaned
    assert cleaned.startswith("run[lr=1e-5] [/bold] red")
    assert "title" not in cleaned and "ZXZpbA" not in cleaned


def test_one_line_caps_length():
    assert one_line("x" * 1000, 50) == "x" * 49 + "…"


def test_block_keeps_lines_and_the_end_of_a_long_traceback():
    text = "\n".join(f"line {i}" for i in range(5000)) + "\rtqdm\x1b[2K\nRuntimeError: boom [/bold]"
    cleaned = block(text, max_lines=100)
    lines = cleaned.split("\n")
    assert len(lines) == 101
    assert lines[0].startswith("… ")
    assert lines[-1] == "RuntimeError: boom [/bold]"
    assert "tqdm" in lines[-2] and "\x1b" not in cleaned


@given(st.text())
def test_cleaned_text_never_holds_control_characters(text):
    for cleaned in (one_line(text), block(text)):
        assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in cleaned)
        assert "\n" not in one_line(text)


def test_sparkline_scales_to_blocks():
    assert sparkline([0.0, 1.0, 2.0]) == SPARK_BLOCKS[0] + SPARK_BLOCKS[3] + SPARK_BLOCKS[-1]
    assert sparkline([]) == ""
    assert len(set(sparkline([5.0] * 4))) == 1
    assert sparkline([-1.7e308, 1.7e308]) == SPARK_BLOCKS[0] + SPARK_BLOCKS[-1]


def bucket_means(values: list[float], width: int) -> list[float]:
    """The sparkline's reference: finite values in `width` buckets of (near) equal size, each its mean."""
    finite = [v for v in values if math.isfinite(v)]
    edges = [i * len(finite) // width for i in range(width + 1)]
    return [sum(finite[a:b]) / (b - a) for a, b in zip(edges, edges[1:])]


def reference_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, point by point: s = w s + (1 - w) v, divided by 1 - w^t."""
    smoothed, last, debias = [], 0.0, 0.0
    for value in values:
        last = last * weight + (1 - weight) * value
        debias = debias * weight + (1 - weight)
        smoothed.append(last / debias if debias else value)
    return smoothed


def test_spark_values_are_bucket_means_of_the_finite_points_and_stay_cheap_for_long_runs():
    series = Series()
    values = np.random.default_rng(1).normal(size=1500)
    values[[5, 700]] = [np.nan, np.inf]
    series.extend(np.arange(1500), values)
    np.testing.assert_allclose(spark_values(series, 10), bucket_means(values.tolist(), 10))
    long = Series()
    long.extend(np.arange(50 * SPARK_SAMPLE), np.linspace(0.0, 1.0, 50 * SPARK_SAMPLE))
    sampled = spark_values(long, 10)
    assert len(sampled) == 10 and sampled == sorted(sampled)
    assert spark_values(None, 10) == [] and spark_values(Series(), 10) == []


def test_progress_bar():
    assert progress_bar(5, 10, 4) == "▰▰▱▱"
    assert progress_bar(5, None, 4) == "    "
    assert progress_bar(50, 10, 4) == "▰▰▰▰"


@pytest.mark.parametrize("weight", [0.0, 0.5, 0.6, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("n", [1, 2, 17, 5000])
def test_smooth_matches_the_reference_ema(weight, n):
    values = np.random.default_rng(n).normal(size=n) * 3 + 1
    np.testing.assert_allclose(smooth(values, weight), reference_ema(values.tolist(), weight), rtol=1e-9, atol=1e-9)


def lines_of(text: Text) -> list[str]:
    return text.plain.split("\n")


def test_chart_has_the_requested_size_and_draws_thresholds():
    x = np.arange(1000, dtype=float)
    chart = Chart("loss", [Line("run", x, np.exp(-x / 300))], thresholds=[0.5])
    text = render_chart(chart, 60, 16, ChartOptions())
    rows = lines_of(text)
    assert len(rows) == 16
    assert all(Text(row).cell_len == 60 for row in rows)
    assert "loss" in rows[0]
    assert any("┈" in row for row in rows)


def test_chart_of_a_million_points_is_cut_to_a_budget():
    x = np.arange(1_000_000, dtype=float)
    y = np.sin(x / 1000)
    text = render_chart(Chart("big", [Line("run", x, y)]), 80, 20, ChartOptions(smoothing=0.9))
    assert len(lines_of(text)) == 20


def test_chart_log_scale_hides_non_positive_values_and_says_so_when_nothing_is_left():
    x = np.arange(5, dtype=float)
    text = render_chart(Chart("kl", [Line("run", x, -x)]), 60, 12, ChartOptions(log_y=True))
    assert "no positive values" in text.plain
    text = render_chart(Chart("kl", [Line("run", x, x)]), 60, 12, ChartOptions(log_y=True))
    assert len(lines_of(text)) == 12


@pytest.mark.parametrize("log_y", [False, True])
def test_a_constant_series_sits_mid_chart_on_an_axis_around_its_value(log_y):
    """plotext alone draws learning_rate = 0.003 at 0 on a -1..1 axis."""
    chart = Chart("learning_rate", [Line("run", np.arange(1.0, 51.0), np.full(50, 0.003))])
    rows = lines_of(render_chart(chart, 60, 13, ChartOptions(log_y=log_y)))
    plot_rows = rows[2:-3]  # inside the frame
    (labelled,) = [index for index, row in enumerate(plot_rows) if row.lstrip().startswith("0.003┤")]
    assert any("\u2800" < char <= "\u28ff" for char in plot_rows[labelled])  # the line, in braille
    assert labelled in (len(plot_rows) // 2 - 1, len(plot_rows) // 2)
    assert not any(mark in "".join(rows) for mark in ("-1.0", "0.5┤"))


def test_chart_edge_cases_do_not_raise():
    one = np.array([3.0])
    for line in (Line("a", one, one), Line("b", np.arange(3.0), np.full(3, 2.5)), Line("c", np.array([]), np.array([]))):
        render_chart(Chart("t", [line]), 40, 10, ChartOptions())
    assert "t" in render_chart(Chart("t", [Line("a", one, one)]), 10, 3, ChartOptions()).plain


def test_overlay_labels_each_run():
    x = np.arange(50, dtype=float)
    chart = Chart("loss", [Line("alpha", x, x), Line("beta", x, 2 * x)])
    text = render_chart(chart, 70, 16, ChartOptions(smoothing=0.0))
    assert "alpha" in text.plain and "beta" in text.plain


def test_plotext_decoder_agrees_with_rich():
    x = np.arange(30, dtype=float)
    render_chart(Chart("loss", [Line("r", x, x**2)]), 50, 12, ChartOptions())
    import plotext

    rendered = plotext.figure.build().string()
    mine = _plotext_text(rendered)
    theirs = Text.from_ansi(rendered)
    assert mine.plain.rstrip("\n") == theirs.plain.rstrip("\n")
    console = Console(width=60, color_system="256", file=open("/dev/null", "w"))
    mine_styles = {str(s.style) for s in mine.render(console) if s.text.strip()}
    assert any("color(" in style for style in mine_styles)


def snapshot(name: str, **fields) -> RunSnapshot:
    defaults = dict(
        path=f"/runs/{name}",
        name=name,
        trainer="DPO",
        status="Healthy",
        severity="ok",
        lifecycle="running",
        step=10,
        max_steps=100,
        values={"loss": 0.5, "reward": None, "win_rate": 0.6, "kl": None},
        last_data_time=100.0,
        counts={},
        findings=(),
        crash=None,
        notes=(),
    )
    defaults.update(fields)
    return RunSnapshot(**defaults)


@pytest.mark.parametrize("width", [60, 80, 100, 120, 160, 240])
def test_layout_fits_the_width_and_keeps_status_and_name(width):
    columns = layout(width)
    keys = [column.key for column, _ in columns]
    assert "status" in keys and "name" in keys
    used = MARK_WIDTH + sum(w for _, w in columns) + len(columns) - 1
    assert used <= max(width, MARK_WIDTH + 15 + 12 + 1)


def test_layout_drops_sparklines_before_values():
    narrow = [c.key for c, _ in layout(80)]
    wide = [c.key for c, _ in layout(200)]
    assert "loss~" in narrow and "win_rate~" not in narrow
    assert [c.key for c in COLUMNS] == wide


def test_filter_terms_or_together_over_name_trainer_and_status():
    runs = [snapshot("dpo-a"), snapshot("grpo-b", trainer="GRPO"), snapshot("c", status="Crashed (oom)")]
    terms = parse_filter(" grpo | crash ")
    assert terms == ["grpo", "crash"]
    assert [s.name for s in runs if matches(s, terms)] == ["grpo-b", "c"]
    assert all(matches(s, parse_filter("")) for s in runs)


def test_status_sort_puts_the_worst_first():
    runs = [
        snapshot("ok"),
        snapshot("crash", severity="critical", lifecycle="crashed"),
        snapshot("medium", severity="medium"),
        snapshot("diverged", severity="critical", lifecycle="running"),
    ]
    ordered = sorted(runs, key=sort_key("status"))
    assert [s.name for s in ordered] == ["crash", "diverged", "medium", "ok"]
    by_loss = sorted([snapshot("a", values={"loss": None}), snapshot("b", values={"loss": 0.1})], key=sort_key("loss"))
    assert [s.name for s in by_loss] == ["b", "a"]


def test_report_path_defaults_outside_the_run(tmp_path):
    run = tmp_path / "runs" / "a[1]"
    run.mkdir(parents=True)
    assert default_report_path("a[1]", str(run), str(tmp_path), "/home/me") == "./a_1-report.md"
    assert default_report_path("x/y", str(run), str(run), "/home/me") == "/home/me/x_y-report.md"
    assert is_inside(str(run / "sub"), str(run)) and not is_inside(str(tmp_path), str(run))

