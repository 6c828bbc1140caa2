"""The reader loop behind the TUI, driven without the UI: what reaches the screen, and when."""

import os
import threading
import time

import pytest

from rlhf_tui import follow
from rlhf_tui.core import runlog
from rlhf_tui.ui.live import LiveLoop, LoopSettings

FALLBACK_SECONDS = 60.0  # the stat poll and the periodic rescan, pushed out of the test's reach


def ptt_run(directory) -> None:
    directory.mkdir(parents=True)
    stamp = "2026-11-26T01:00:00+00:00"
    lines = [runlog.header("dpo", "run", stamp)] + [runlog.step(step, stamp, {"dpo_loss": 0.69}) for step in (1, 2)]
    (directory / runlog.METRICS_FILE).write_text("".join(map(runlog.line, lines)))


@pytest.fixture
def loop(tmp_path, monkeypatch):
    """A running loop over tmp_path/root whose only way to notice changes is inotify."""
    monkeypatch.setattr(follow, "STAT_POLL_SECONDS", FALLBACK_SECONDS)
    monkeypatch.setattr(follow, "RESCAN_SECONDS", FALLBACK_SECONDS)
    root = tmp_path / "root"
    root.mkdir()
    waiting = threading.Event()
    loop = LiveLoop(LoopSettings(roots=[str(root)]), notify=waiting.set)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    loop.waiting = waiting
    loop.root = root
    yield loop
    loop.stop()
    thread.join(timeout=5)


def batches(loop: LiveLoop, until, timeout: float = 10.0) -> None:
    """Take batches as the UI would until `until(batch)` holds (a liveness bound, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if loop.waiting.wait(0.05):
            loop.waiting.clear()
            if until(loop.take()):
                return
    raise AssertionError("the loop did not get there")


def test_a_run_directory_that_appears_with_its_files_already_in_it_is_shown_every_time(tmp_path, loop):
    """`cp -r` or `mv` into a watched root: the files are there before the directory's watch is, so
    they send no event of their own; only the new directory's event says that something arrived."""
    batches(loop, lambda batch: batch.loaded)
    for attempt in range(12):
        name = f"run{attempt}"
        if attempt % 2:
            ptt_run(loop.root / name)  # as `cp -r` does: the directory, then its files at once
        else:
            ptt_run(tmp_path / f"staged{attempt}")  # as `mv` does: the directory with its files
            os.rename(tmp_path / f"staged{attempt}", loop.root / name)
        batches(loop, lambda batch: name in {snapshot.name for snapshot in batch.snapshots.values()})
