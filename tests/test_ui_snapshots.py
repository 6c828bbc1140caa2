"""Snapshot tests of the main screens at 80x24 and 160x48 (pytest-textual-snapshot).

The clock is frozen so ages are the same on every run; notifications are cleared before the picture.
Update after an intended change with `pytest tests/test_ui_snapshots.py --snapshot-update` and look
at the SVGs in tests/__snapshots__/test_ui_snapshots/.
"""

import shutil
import time
from pathlib import Path

import pytest

from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.live import LoopSettings
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.widgets.charts import ChartView
from rlhf_tui.ui.widgets.runs_table import RunsTable

REAL_RUNS = Path(__file__).parent / "fixtures" / "real_runs"
FROZEN_NOW = 1_795_657_000.0  # a few minutes after the fixture runs ended
SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def app(tmp_path: Path) -> RlhfTop:
    shutil.copytree(REAL_RUNS, tmp_path / "runs")
    return RlhfTop(LoopSettings(roots=[str(tmp_path / "runs")], poll_seconds=60, clock=lambda: FROZEN_NOW))


async def settle(pilot, run: str | None = None) -> None:
    app = pilot.app
    deadline = time.monotonic() + 15
    while not (app.loaded and len(app.home.query_one(RunsTable).order) == 4):
        assert time.monotonic() < deadline, "the runs did not load"
        await pilot.pause(0.05)
    if run is not None:
        table = app.home.query_one(RunsTable)
        table.move_to_path(next(p for p in table.order if table.snapshots[p].name == run))
    await pilot.pause()
    app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_home_screen(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: settle(pilot, "grpo_small"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_crash_pane(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=lambda pilot: settle(pilot, "dpo_crash"))


def charts_drawn(screen) -> bool:
    """The run view's worker has delivered, and the screen has drawn what it asked for last."""
    return isinstance(screen, RunScreen) and screen.drawn and screen.query(ChartView).first().chart is not None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_run_view(snap_compare, app, size):
    async def open_grpo(pilot):
        await settle(pilot, "grpo_small")
        await pilot.press("enter")
        while not charts_drawn(pilot.app.screen):
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_grpo)
