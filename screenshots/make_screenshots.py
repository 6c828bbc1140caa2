"""SVG screenshots of rlhf-top's main screens, for the README.

    python screenshots/make_screenshots.py [RUNS_DIR] [OUT_DIR] [--size 120x36]

RUNS_DIR defaults to sample_runs/ (tests/fixtures/real_runs works too), OUT_DIR to this folder. The
app runs headless over RUNS_DIR; the clock is frozen just after the newest logged step, so ages read
the same every time. Written: home.svg, home-80x24.svg, run.svg, overlay.svg, config.svg, crash.svg, help.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from rlhf_tui.session import open_session
from rlhf_tui.ui.live import LoopSettings
from rlhf_tui.ui.screens.config_view import ConfigScreen
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.widgets.runs_table import RunsTable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def frozen_now(runs_dir: Path) -> float:
    """A moment 90 seconds after the newest step of any run (now, if none logged a time)."""
    session = open_session([str(runs_dir)])
    session.load()
    times = [run.last_data_time for run in session.runs() if run.last_data_time is not None]
    return max(times) + 90 if times else time.time()


async def wait_until(pilot, condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("rlhf-top did not get there in time")
        await pilot.pause(0.05)


async def shoot(runs_dir: Path, out_dir: Path, size: tuple[int, int], now: float, which: str) -> None:
    app = RlhfTop(LoopSettings(roots=[str(runs_dir)], poll_seconds=3600, clock=lambda: now))
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.loaded and app.home.query_one(RunsTable).order)
        table = app.home.query_one(RunsTable)
        snapshots = [table.snapshots[path] for path in table.order]
        if which == "crash":
            crashed = [s for s in snapshots if s.crash is not None and s.crash.traceback]
            if not crashed:
                print("no crashed run with a traceback: crash.svg skipped", file=sys.stderr)
                return
            # A specific cause (OOM, NCCL, ...) shows more than a plain exception; home.svg has the first.
            table.move_to_path(max(crashed, key=lambda s: s.crash.reason != "exception").path)
        elif which == "run":
            with_threshold = next(
                (s for s in snapshots if s.crash is None and any(f.active and f.threshold is not None for f in s.findings)),
                snapshots[0],
            )
            table.move_to_path(with_threshold.path)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.drawn)
        elif which in ("overlay", "config"):
            by_trainer: dict[str, list[str]] = {}
            for snapshot in snapshots:
                by_trainer.setdefault(snapshot.trainer, []).append(snapshot.path)
            group = max(by_trainer.values(), key=len)
            if len(group) < 2:
                print(f"no two runs of one trainer: {which}.svg skipped", file=sys.stderr)
                return
            table.selected.update(group[:3])
            table.move_to_path(group[0])
            if which == "overlay":
                await pilot.press("enter")
                await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.drawn)
            else:
                await pilot.press("i")
                await wait_until(pilot, lambda: isinstance(app.screen, ConfigScreen) and app.screen.drawn)
        elif which == "help":
            await pilot.press("question_mark")
        await pilot.pause(0.3)
        app.clear_notifications()
        await pilot.pause()
        name = f"{which}.svg" if size == (120, 36) else f"{which}-{size[0]}x{size[1]}.svg"
        app.save_screenshot(filename=name, path=str(out_dir))
        print(out_dir / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", nargs="?", type=Path, default=REPO / "sample_runs")
    parser.add_argument("out_dir", nargs="?", type=Path, default=HERE)
    parser.add_argument("--size", default="120x36", help="terminal size, COLUMNSxROWS (default 120x36)")
    args = parser.parse_args()
    if not args.runs_dir.is_dir():
        parser.error(f"not a directory: {args.runs_dir}")
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    now = frozen_now(args.runs_dir)
    for which in ("home", "run", "overlay", "config", "crash", "help"):
        asyncio.run(shoot(args.runs_dir, args.out_dir, (columns, rows), now, which))
    asyncio.run(shoot(args.runs_dir, args.out_dir, (80, 24), now, "home"))


if __name__ == "__main__":
    main()
