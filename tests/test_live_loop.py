"""The reader loop behind the TUI, driven without the UI: what reaches the screen, and when."""

import os
import threading
import time

import pytest

from alert_runs import learning, parked, write_run
from rlhf_tui import follow
from rlhf_tui.core import runlog
from rlhf_tui.events import EventTracker
from rlhf_tui.ui.live import LiveLoop, LoopSettings

T0 = 1_800_000_000.0
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


def test_a_stop_during_the_cold_start_leaves_no_first_look(tmp_path, monkeypatch):
    """A history read in part is not what the run is: stopped then, the follower announces nothing
    and remembers nothing (a watcher would otherwise save it and send a false 'stuck' next time)."""
    monkeypatch.setattr(follow, "PASS_BUDGET", 4096)  # the backlog takes many passes
    root = tmp_path / "root"
    write_run(root / "parked_then_learned", parked(40) + learning(400), T0, footer=True)
    tracker = EventTracker()
    passes: list[follow.Pass] = []

    def on_pass(done: follow.Pass) -> None:
        passes.append(done)
        follower.stop()

    follower = follow.Follower(follow.LoopSettings(roots=[str(root)], poll_seconds=60.0), on_pass, tracker)
    follower.run()
    assert passes and not any(done.loaded or done.events for done in passes)
    assert tracker.memory == {} and not tracker.changed


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        return super().wait(timeout)


def test_a_paused_follower_sleeps_until_it_is_resumed(tmp_path):
    root = tmp_path / "root"
    write_run(root / "a", learning(5), T0)
    loaded = threading.Event()
    follower = follow.Follower(
        follow.LoopSettings(roots=[str(root)], poll_seconds=0.05),
        lambda done: loaded.set() if done.loaded else None,
        EventTracker(),
    )
    wake = follower._wake = CountingEvent()
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        assert loaded.wait(10)
        follower.paused = True
        time.sleep(0.3)  # let the loop notice
        before = wake.waits
        time.sleep(0.5)
        assert wake.waits - before <= 1  # asleep, not polling every 50 ms (nor spinning)
        follower.paused = False
        follower.refresh_now()
        write_run(root / "a", learning(1, start=5), T0 + 5, first=6, header=False)
        deadline = time.monotonic() + 10
        while follower.session.monitor.runs[str(root / "a")].last_step != 6:
            assert time.monotonic() < deadline, "the resumed follower did not read the new step"
            time.sleep(0.05)
    finally:
        follower.stop()
        thread.join(5)
