"""Run status: lifecycle first, then the most severe active finding."""

from rlhf_tui.core.records import Crash
from rlhf_tui.rules import Finding, run_status
from rules_fakerun import NOW, FakeRun


def run(state="running", crash=None, quiet=None, last_step=120) -> FakeRun:
    stand_in = FakeRun("dpo")
    stand_in.state, stand_in.crash, stand_in.quiet, stand_in.last_step = state, crash, quiet, last_step
    return stand_in


def finding(severity, active=True, title="T"):
    return Finding("r", severity, title, "ref", "act", active=active)


def status_of(stand_in: FakeRun, findings=()):
    return run_status(stand_in, list(findings), NOW)


def test_crash_beats_everything_and_names_the_exception():
    crash = Crash("exception", "Python exception", exception="RuntimeError: boom")
    status = status_of(run("crashed", crash), [finding("critical")])
    assert (status.word, status.severity, status.detail, status.lifecycle) == (
        "Crashed (exception)", "critical", "RuntimeError: boom", "crashed")
    assert status_of(run("crashed", Crash("oom", "CUDA out of memory"))).word == "Crashed (oom)"


def test_killed_and_stalled():
    assert status_of(run("killed", Crash("sigkill", "killed by SIGKILL"))).detail == "killed by SIGKILL"
    status = status_of(run("stalled", quiet=1800), [finding("high")])
    assert (status.word, status.detail) == ("Stalled", "no new step for 30 min after step 120")
    assert status_of(run("stalled", quiet=4 * 3600)).detail.startswith("no new step for 4.0 h")


def test_findings_decide_a_live_or_finished_run():
    assert status_of(run(), [finding("critical"), finding("high")]).word == "Diverged (NaN)"
    unstable = status_of(run("finished"), [finding("medium"), finding("high", title="Gradient explosion")])
    assert (unstable.word, unstable.severity, unstable.detail, unstable.lifecycle) == (
        "Unstable", "high", "Gradient explosion", "finished")
    assert status_of(run(), [finding("medium")]).word == "Partially unstable"


def test_cleared_and_low_findings_leave_a_run_healthy_and_uncoloured():
    status = status_of(run(), [finding("critical", active=False), finding("low", title="Loss plateaued early")])
    assert (status.word, status.severity, status.detail) == ("Healthy", "ok", "")
    assert status_of(run()).word == "Healthy"


def test_a_run_quiet_for_a_day_has_stopped_and_is_a_problem_only_short_of_its_known_length():
    old = run("stopped", quiet=73 * 86400, last_step=90)
    assert (status_of(old).word, status_of(old).severity) == ("Stopped", "ok")
    assert status_of(old).detail == "stopped 73 days ago (no end marker)"
    old.facts["max_steps"] = 5000
    short = status_of(old)
    assert (short.word, short.severity) == ("Stopped early", "high")
    assert short.detail.startswith("stopped at step 90 of 5000, no end marker")
    old.facts["max_steps"] = 90
    assert status_of(old).word == "Stopped"
