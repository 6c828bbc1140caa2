"""Events from transitions of real runs' diagnoses, read by a real session under a clock the test moves."""

import json
import shutil

import pytest

from alert_runs import crash, learning, parked, write_run
from rlhf_tui.events import KINDS, EventTracker
from rlhf_tui.session import open_session

T0 = 1_800_000_000.0


class Watch:
    """A session and an event tracker over tmp_path/runs, stepped by hand."""

    def __init__(self, root, memory=None, kinds=KINDS, process_probe=None):
        self.root = root
        self.now = T0
        self.session = open_session([str(root)], clock=lambda: self.now, process_probe=process_probe)
        self.session.load()
        self.tracker = EventTracker(memory, kinds)
        self.first = self.tracker.start(self._all(), self.now, self.session.rules)

    def _all(self):
        return [(run, self.session.diagnosis(run)) for run in self.session.runs()]

    def step(self, seconds: float = 1.0) -> list[tuple[str, str]]:
        """Let time pass, read what changed: (kind, run name) of each event."""
        self.now += seconds
        changed = self.session.refresh(None, rescan=True) | self.session.tick()
        visible = set(self.session.runs())
        self.events = self.tracker.update([(r, self.session.diagnosis(r)) for r in changed if r in visible], self.now)
        return [(event.kind, event.name) for event in self.events]


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return path


def test_a_crash_is_one_event_however_often_the_run_is_looked_at_again(root):
    write_run(root / "a", learning(20), T0 - 20)
    watch = Watch(root)
    assert watch.step() == []
    crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
    assert watch.step() == [("crash", "a")]
    for _ in range(5):
        assert watch.step(60) == []


def test_a_run_that_stalls_resumes_and_stalls_again_is_news_each_time_it_stalls(root):
    write_run(root / "a", learning(20), T0 - 20)
    watch = Watch(root)
    assert watch.step(600) == [("stall", "a")]  # the run-scope `stalled` finding makes no event of its own
    assert watch.step(600) == []
    write_run(root / "a", learning(5, start=20), watch.now, first=21, header=False)
    assert watch.step() == []
    assert watch.step(600) == [("stall", "a")]


def test_a_finding_is_one_event_while_it_stays_active_and_news_again_when_it_fires_again(root):
    write_run(root / "a", learning(10), T0 - 100)
    watch = Watch(root)
    write_run(root / "a", parked(60), T0 - 90, first=11, header=False)
    assert watch.step() == [("high", "a")]
    write_run(root / "a", parked(20), T0 - 30, first=71, header=False)
    assert watch.step() == []
    write_run(root / "a", learning(40, start=20), T0 - 10, first=91, header=False)
    assert watch.step() == []
    cleared = watch.session.diagnosis(watch.session.runs()[0])
    assert "dpo_no_signal" not in {f.rule_id for f in cleared.active}
    write_run(root / "a", parked(60), T0 + 30, first=131, header=False)
    assert watch.step(90) == [("high", "a")]


def test_a_run_whose_process_vanishes_is_killed(root):
    write_run(root / "a", learning(20), T0 - 20)
    (root / "a" / "run_metadata.json").write_text(json.dumps({"trainer_type": "dpo", "host": "gpu-3", "pid": 4242}))
    alive = {4242: True}
    watch = Watch(root, process_probe=lambda pid, host: alive[pid])
    assert watch.step(60) == []
    alive[4242] = False
    assert watch.step(60) == [("killed", "a")]
    assert (watch.events[0].status, watch.events[0].detail) == ("Killed", "its process is gone and it left no end marker")
    assert watch.step(60) == []


def test_a_nan_loss_is_a_divergence_and_the_end_of_a_run_is_its_finish(root):
    write_run(root / "a", learning(20), T0 - 20)
    watch = Watch(root)
    nan = [{"dpo_loss": float("nan"), "win_rate": 0.6, "reward_margin": 0.1}] * 3
    write_run(root / "a", nan, T0, first=21, header=False, footer=True)
    assert watch.step() == [("diverged", "a"), ("finish", "a")]


def test_runs_there_at_the_first_look_are_taken_as_they_are(root):
    write_run(root / "crashed", learning(20), T0 - 20)
    crash(root / "crashed", 20, "gpu-1", "RuntimeError: boom")
    write_run(root / "stuck", parked(60), T0 - 60)
    assert Watch(root).first == []


def test_a_later_look_tells_what_changed_since_the_memory_and_what_is_new(root):
    write_run(root / "old", learning(20), T0 - 20)
    first = Watch(root)
    memory = first.tracker.memory
    crash(root / "old", 20, "gpu-1", "RuntimeError: boom")
    write_run(root / "new", learning(20), T0 - 20, footer=True)
    again = Watch(root, memory)
    assert sorted((e.kind, e.name) for e in again.first) == [("crash", "old"), ("finish", "new")]
    assert Watch(root, again.tracker.memory).first == []


def test_events_not_asked_for_are_not_reported_but_still_remembered(root):
    write_run(root / "a", learning(20), T0 - 20)
    watch = Watch(root, kinds=["crash"])
    write_run(root / "a", learning(5, start=20), T0, first=21, header=False, footer=True)
    assert watch.step() == []
    assert watch.tracker.memory[str(root / "a")]["condition"] == "finished"


def test_a_run_that_goes_away_and_comes_back_keeps_what_was_said_of_it(root, tmp_path):
    write_run(root / "a", learning(20), T0 - 20)
    crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
    watch = Watch(root)
    shutil.move(root / "a", tmp_path / "away")
    assert watch.step() == []
    shutil.move(tmp_path / "away", root / "a")
    assert watch.step() == []


def test_an_event_carries_what_a_message_says_with_untrusted_text_cleaned(root):
    name = "evil\x1b]0;title\x07run"
    write_run(root / name, learning(20), T0 - 20)
    watch = Watch(root)
    crash(root / name, 20, "gpu-7\x1b[2J", "RuntimeError: \x1b]52;c;cGF5bG9hZA==\x07boom")
    assert watch.step() == [("crash", "evilrun")]
    (event,) = watch.events
    assert (event.path, event.host, event.trainer, event.step, event.max_steps) == (str(root / name), "gpu-7", "DPO", 20, None)
    assert (event.status, event.what, event.detail) == ("Crashed (exception)", "Crashed (exception)", "RuntimeError: boom")
