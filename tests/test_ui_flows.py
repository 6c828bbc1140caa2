"""The TUI driven like a person would: Pilot key presses against real run directories.

Runs are written to tmp_path (copies of the real TRL runs, or small PTT-format logs) and the app
reads them through the real reader thread; `wait_for` gives it time to catch up.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rlhf_tui.core import runlog
from rlhf_tui.ui.live import LoopSettings
from rlhf_tui.ui.screens.dialogs import ConfirmScreen, ExportScreen, HelpScreen
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.widgets.charts import ChartView, MetricList
from rlhf_tui.ui.widgets.panes import CrashPane, InsightsPane
from rlhf_tui.ui.widgets.runs_table import RunsTable
from tui import Notifications, screen_text, wait_for

REAL_RUNS = Path(__file__).parent / "fixtures" / "real_runs"
T0 = 1_800_000_000.0


def write_ptt_run(
    directory: Path, trainer: str, steps: list[dict], start: int = 1, header: bool = True, t0: float = T0
) -> Path:
    """Append PTT-format lines (`{"step", "timestamp", "metrics"}`) to directory/metrics.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / runlog.METRICS_FILE
    with path.open("a") as file:
        if header:
            file.write(runlog.line(runlog.header(trainer, "run", datetime.fromtimestamp(t0, tz=timezone.utc).isoformat())))
        for offset, metrics in enumerate(steps):
            step = start + offset
            stamp = datetime.fromtimestamp(t0 + step, tz=timezone.utc).isoformat()
            file.write(runlog.line(runlog.step(step, stamp, metrics)))
    return path


def dpo_steps(count: int, loss: float = 0.5) -> list[dict]:
    return [{"dpo_loss": loss - 0.001 * i, "win_rate": 0.6, "reward_margin": 0.1 + 0.01 * i} for i in range(count)]


def make_app(roots, poll: float | None = 0.2, clock=time.time) -> RlhfTop:
    return RlhfTop(LoopSettings(roots=[str(r) for r in roots], poll_seconds=poll, clock=clock))


def drawn(app: RlhfTop) -> bool:
    """The run view shows the answer to what it asked its worker for last."""
    return isinstance(app.screen, RunScreen) and app.screen.drawn


def table(app: RlhfTop) -> RunsTable:
    return app.home.query_one(RunsTable)


def names(app: RlhfTop) -> list[str]:
    t = table(app)
    return [t.snapshots[path].name for path in t.order]


def cursor_name(app: RlhfTop) -> str:
    t = table(app)
    return t.snapshots[t.cursor_path].name


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    target = tmp_path / "runs"
    shutil.copytree(REAL_RUNS, target)
    return target


@pytest.mark.parametrize("width", [80, 120, 200])
async def test_rows_fit_the_terminal(runs, width):
    app = make_app([runs])
    async with app.run_test(size=(width, 30)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        lines = screen_text(app).splitlines()
        assert lines[1].rstrip().endswith("age")  # the header's last column is not cut
        assert all(line.rstrip()[-1:] in "smhd" for line in lines[2:6])  # nor are the ages


async def test_navigate_with_arrows_and_jk(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        first = cursor_name(app)
        assert first == names(app)[0]
        await pilot.press("j")
        assert cursor_name(app) == names(app)[1]
        await pilot.press("down", "down")
        assert cursor_name(app) == names(app)[3]
        await pilot.press("down")
        assert cursor_name(app) == names(app)[3]
        await pilot.press("k", "up", "up", "up")
        assert cursor_name(app) == first
        await pilot.press("G")
        assert cursor_name(app) == names(app)[-1]
        insights = app.home.query_one(InsightsPane)
        assert cursor_name(app) in str(insights.border_title)


async def test_worst_run_comes_first_and_n_visits_each_problem(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        t = table(app)
        severities = [t.snapshots[p].severity for p in t.order]
        rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "ok": 4}
        assert severities == sorted(severities, key=rank.get)
        problems = {t.snapshots[p].name for p in t.order if t.snapshots[p].has_problem}
        assert "dpo_stuck" in problems
        visited = set()
        for _ in range(len(problems)):
            await pilot.press("n")
            visited.add(cursor_name(app))
        assert visited == problems


async def test_sort_keeps_the_cursor_on_its_run(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("j")
        chosen = cursor_name(app)
        await pilot.press("s")
        assert table(app).sort_by == "name"
        assert names(app) == sorted(names(app))
        assert cursor_name(app) == chosen
        await pilot.press("S")
        assert names(app) == sorted(names(app), reverse=True)
        assert cursor_name(app) == chosen
        await pilot.press("s")
        assert table(app).sort_by == "step"
        steps = [table(app).snapshots[p].step for p in table(app).order]
        assert steps == sorted(steps, reverse=True)
        assert cursor_name(app) == chosen
        assert "step ▼" in screen_text(app)


async def test_filter_with_or_terms_and_clear(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("slash", *"grpo|sft")
        assert sorted(names(app)) == ["grpo_small", "sft_small"]
        await pilot.press("enter")
        assert table(app).has_focus
        assert sorted(names(app)) == ["grpo_small", "sft_small"]
        assert cursor_name(app) in ("grpo_small", "sft_small")
        await pilot.press("escape")
        assert len(names(app)) == 4
        await pilot.press("slash", *"unstable")
        assert all("unstable" in table(app).snapshots[p].status.lower() for p in table(app).order)
        await pilot.press("escape")
        assert len(names(app)) == 4


async def test_open_a_run_and_change_the_chart(runs):
    app = make_app([runs])
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("slash", *"grpo", "enter", "enter")
        await wait_for(pilot, lambda: drawn(app))
        screen = app.screen
        metric_ids = [option.id for option in screen.query_one(MetricList).options]
        assert metric_ids[0] == "role:loss"
        assert "role:reward" in metric_ids and "role:kl" in metric_ids
        assert any(i.startswith("key:") for i in metric_ids)
        charts = [view for view in screen.query(ChartView) if view.display]
        assert len(charts) == 4
        assert charts[0].chart.title.startswith("loss")
        kl_chart = next(view.chart for view in charts if view.chart.title.startswith("kl"))
        assert kl_chart.thresholds == [1.0]  # reward hacking's line: 1 nat of KL per token
        await pilot.press("down")
        await wait_for(pilot, lambda: drawn(app) and charts[0].chart.title.startswith("reward"))
        await pilot.press("l", "x", "plus")
        assert screen.options.log_y and screen.by_time
        assert screen.options.smoothing > 0.6
        await wait_for(pilot, lambda: drawn(app) and "seconds" in charts[0].render().plain)
        await pilot.press("minus", "minus", "minus")
        assert screen.options.smoothing == 0.0
        await pilot.press("escape")
        assert app.screen is app.home


async def test_selected_runs_overlay_in_one_chart(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("s")  # by name: dpo_crash, dpo_stuck, grpo_small, sft_small
        await pilot.press("g", "space", "j", "space")
        assert {table(app).snapshots[p].name for p in table(app).selected} == {"dpo_crash", "dpo_stuck"}
        await pilot.press("enter")
        await wait_for(pilot, lambda: drawn(app))
        chart = app.screen.query_one(ChartView).chart
        assert [line.label for line in chart.lines] == ["dpo_crash", "dpo_stuck"]
        assert "2 of 2 runs" in chart.title


async def test_export_asks_before_overwriting(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("slash", *"dpo_stuck", "enter")
        await pilot.press("e")
        assert isinstance(app.screen, ExportScreen)
        assert app.screen.query_one("#export-path").value == "./dpo_stuck-report.md"
        await pilot.press("enter")
        report = tmp_path / "dpo_stuck-report.md"
        await wait_for(pilot, report.exists)
        first = report.read_text()
        assert first.startswith("## RLHF Run Diagnostic Report")
        assert "dpo_stuck" in first
        report.write_text("keep me")
        await pilot.press("e", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert report.read_text() == "keep me"
        await pilot.press("e", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: report.read_text() != "keep me")
        assert report.read_text().startswith("## RLHF Run Diagnostic Report")


async def test_export_refuses_to_write_inside_the_run(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app([runs])
    notices = Notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("slash", *"sft", "enter", "e")
        field = app.screen.query_one("#export-path")
        field.value = str(runs / "sft_small" / "report.md")
        await pilot.press("enter")
        await pilot.pause()
        assert not (runs / "sft_small" / "report.md").exists()
        assert notices.any("never written inside a run")


async def test_help_lists_the_keys_of_the_screen(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        described = {description for _, description, _ in app.screen.rows}
        keys = {key.strip() for keys, _, _ in app.screen.rows for key in keys.split(",")}
        assert {"/", "?", "s", "n", "e", "q", "space"} <= keys
        assert any("Sort by" in d for d in described)
        await pilot.press("escape")
        assert app.screen is app.home
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("question_mark")
        keys = {key.strip() for keys, _, _ in app.screen.rows for key in keys.split(",")}
        assert {"x", "l", "+", "esc"} <= keys


async def test_command_palette_offers_the_actions(runs):
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Sort", "Filter", "Export", "Pause", "Next problem", "Open"} <= titles
        sort = next(c for c in app.get_system_commands(app.screen) if c.title == "Sort")
        await sort.callback()
        assert table(app).sort_by == "name"


async def test_tab_cycles_the_panes_of_a_crashed_run(runs):
    app = make_app([runs])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        await pilot.press("slash", *"dpo_crash", "enter")
        crash = app.home.query_one(CrashPane)
        insights = app.home.query_one(InsightsPane)
        assert crash.display and not insights.display  # narrow: the crash pane comes first
        await pilot.press("tab")
        assert insights.has_focus and insights.display and not crash.display
        await pilot.press("tab")
        assert crash.has_focus and crash.display
        await pilot.press("tab")
        assert table(app).has_focus
        await pilot.press("shift+tab")
        assert crash.has_focus


async def test_r_rereads_now_when_polling_is_slow(tmp_path):
    run = tmp_path / "run"
    write_ptt_run(run, "dpo", dpo_steps(3))
    app = make_app([tmp_path], poll=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        write_ptt_run(run, "dpo", dpo_steps(2), start=4, header=False)
        write_ptt_run(tmp_path / "new", "dpo", dpo_steps(2))
        await pilot.press("r")
        await wait_for(pilot, lambda: len(table(app).order) == 2)
        assert {table(app).snapshots[p].step for p in table(app).order} == {5, 2}


async def test_the_run_view_follows_new_steps(tmp_path):
    run = tmp_path / "run"
    write_ptt_run(run, "dpo", dpo_steps(5))
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        await pilot.press("enter")
        await wait_for(pilot, lambda: drawn(app))
        chart = app.screen.query_one(ChartView)
        assert "@ step 5" in chart.chart.title
        write_ptt_run(run, "dpo", dpo_steps(4), start=6, header=False)
        await wait_for(pilot, lambda: "@ step 9" in chart.chart.title)


async def test_pause_stops_reading_and_resume_catches_up(tmp_path):
    run = tmp_path / "live"
    write_ptt_run(run, "dpo", dpo_steps(5))
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        await pilot.press("p")
        assert app.loop.paused and "PAUSED" in screen_text(app)
        write_ptt_run(run, "dpo", dpo_steps(5), start=6, header=False)
        await pilot.press("p")
        assert not app.loop.paused
        await wait_for(pilot, lambda: table(app).snapshots[table(app).order[0]].step == 10)


async def test_live_appends_update_the_row_and_the_insights(tmp_path):
    run = tmp_path / "live"
    path = write_ptt_run(run, "dpo", dpo_steps(5))
    app = make_app([tmp_path], poll=None)  # watchfiles, as in real use
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        t = table(app)
        row = t.order[0]
        assert t.snapshots[row].step == 5
        assert t.snapshots[row].severity == "ok"
        write_ptt_run(run, "dpo", dpo_steps(3), start=6, header=False)
        await wait_for(pilot, lambda: t.snapshots[row].step == 8)
        assert " 8" in screen_text(app)
        with path.open("a") as file:
            for step in range(9, 14):
                line = {"step": step, "timestamp": T0 + step, "metrics": {"dpo_loss": float("nan"), "win_rate": 0.5}}
                file.write(json.dumps(line) + "\n")
        await wait_for(pilot, lambda: t.snapshots[row].severity == "critical")
        snapshot = t.snapshots[row]
        assert snapshot.findings and snapshot.findings[0].severity == "critical"
        assert all(v is None or v == v for v in snapshot.values.values())  # NaN never reaches a widget
        await pilot.pause()
        shown = screen_text(app)
        assert snapshot.findings[0].title in shown and "NEW" in shown


TRACEBACK = """Traceback (most recent call last):
  File "train.py", line 10, in <module>
    trainer.train()  # [/bold] [red]not markup[/red]
RuntimeError: CUDA error: an illegal memory access was encountered [/bold]
"""


async def test_a_crash_shows_its_traceback_and_exports_a_postmortem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "crashy"
    write_ptt_run(run, "dpo", dpo_steps(6))
    log = run / "train.log"
    log.write_text("{'loss': '0.5', 'epoch': '0.1'}\n")
    app = make_app([tmp_path / "runs"])
    notices = Notifications(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        t = table(app)
        row = t.order[0]
        assert t.snapshots[row].crash is None
        with log.open("a") as file:
            file.write("\x1b[31m" + TRACEBACK + "\x1b[0m")
        await wait_for(pilot, lambda: t.snapshots[row].crash is not None)
        crash = t.snapshots[row].crash
        assert "\x1b" not in (crash.traceback or "")
        await pilot.pause()
        pane = app.home.query_one(CrashPane)
        assert pane.display
        assert "[/bold]" in pane.traceback and "RuntimeError" in pane.traceback
        shown = screen_text(app)
        assert "Last good step: 6" in shown
        assert "[/bold]" in shown and "not markup" in shown
        assert any(notice.title == "Run failed" for notice in notices.seen)
        await pilot.press("c")
        assert app.clipboard == pane.traceback
        await pilot.press("e", "enter")
        report = tmp_path / "crashy-report.md"
        await wait_for(pilot, report.exists)
        text = report.read_text()
        assert "### Postmortem" in text and "RuntimeError" in text


async def test_untrusted_names_and_notes_are_shown_as_data(tmp_path):
    hostile = "run[lr=1e-5] [/bold]"
    write_ptt_run(tmp_path / hostile, "dpo", dpo_steps(4))
    broken = write_ptt_run(tmp_path / "broken", "dpo", dpo_steps(4))
    with broken.open("ab") as file:
        file.write(b"\x1b[2J\x00\xff not json [/red]\n")
    write_ptt_run(tmp_path / "broken", "dpo", dpo_steps(2), start=5, header=False)
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 2)
        await wait_for(pilot, lambda: any(table(app).snapshots[p].notes for p in table(app).order))
        shown = screen_text(app)
        assert hostile in shown
        await pilot.press("slash", *"broken", "enter")
        await wait_for(pilot, lambda: "note(s) about this run's files" in screen_text(app))
        snapshot = table(app).snapshots[table(app).cursor_path]
        assert snapshot.step == 6  # the bad line is a note, later lines still count
        assert snapshot.notes and not any("\x1b" in note or "\x00" in note for note in snapshot.notes)


async def test_a_failing_update_is_reported_and_updates_continue(tmp_path):
    run = tmp_path / "live"
    write_ptt_run(run, "dpo", dpo_steps(3))
    app = make_app([tmp_path])
    notices = Notifications(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and table(app).order)
        session = app.loop.session
        original = session.refresh
        calls = []

        def failing_once(*args, **kwargs):
            if not calls:
                calls.append(1)
                raise RuntimeError("disk on fire")
            return original(*args, **kwargs)

        session.refresh = failing_once
        await wait_for(pilot, lambda: notices.any("disk on fire"))
        write_ptt_run(run, "dpo", dpo_steps(2), start=4, header=False)
        await wait_for(pilot, lambda: table(app).snapshots[table(app).order[0]].step == 5)
        assert app.is_running


async def test_new_runs_appear_while_watching(tmp_path):
    write_ptt_run(tmp_path / "first", "dpo", dpo_steps(3))
    app = make_app([tmp_path], poll=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 1)
        write_ptt_run(tmp_path / "second", "grpo", [{"grpo_loss": 0.1, "reward_mean": 0.5, "kl": 0.01}] * 3)
        await wait_for(pilot, lambda: len(table(app).order) == 2)
        assert "second" in names(app)
        assert cursor_name(app) == "first"


async def test_without_colour_severity_is_carried_by_text_styles(runs, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app([runs])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded and len(table(app).order) == 4)
        t = table(app)
        crashed = next(i for i, p in enumerate(t.order) if t.snapshots[p].severity == "critical")
        status = next(seg for seg in t.render_line(crashed + 1) if "Crashed" in seg.text)
        assert status.style.reverse and status.style.bold


async def test_hangup_exits_cleanly(tmp_path):
    write_ptt_run(tmp_path / "run", "dpo", dpo_steps(3))
    app = make_app([tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.loaded)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert app.loop.stopped


async def test_the_loaded_toast_counts_and_names_every_failed_run_the_table_marks(tmp_path):
    """Three crashes, one killed process and one NaN: five ✖ in the table, five in the toast."""
    t0 = time.time() - 100  # a killed process: quiet past the 30 s grace, not stalled yet
    for name, reason in (("crash_a", "exception"), ("crash_b", "oom"), ("crash_c", "sigterm")):
        write_ptt_run(tmp_path / name, "dpo", dpo_steps(3), t0=t0)
        (tmp_path / name / "postmortem.json").write_text(json.dumps({"exit_reason": reason, "last_step": 3}))
    write_ptt_run(tmp_path / "killed", "dpo", dpo_steps(3), t0=t0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    metadata = {"trainer_type": "dpo", "host": socket.gethostname(), "pid": dead.pid, "status": "running"}
    (tmp_path / "killed" / "run_metadata.json").write_text(json.dumps(metadata))
    write_ptt_run(tmp_path / "nan", "sft", [{"sft_loss": 2.0}, {"sft_loss": float("nan")}], t0=t0)
    write_ptt_run(tmp_path / "fine", "dpo", dpo_steps(3), t0=t0)
    app = make_app([tmp_path])
    notices = Notifications(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.loaded)
        failed = sorted(s.name for s in app.snapshots.values() if s.severity == "critical")
        assert failed == ["crash_a", "crash_b", "crash_c", "killed", "nan"]
        (toast,) = [notice.message for notice in notices.seen if "failed" in notice.message]
        assert toast.startswith("5 failed runs: ")
        assert all(name in toast for name in failed) and "fine" not in toast
