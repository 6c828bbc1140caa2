"""Run status: lifecycle first, then the most severe active finding."""

from rlhf_tui.core.records import Crash
from rlhf_tui.rules import Finding, run_status


class Run:
    def __init__(self, lifecycle="running", crash=None, stalled_for=None, last_step=120):
        self.lifecycle, self.crash, self.stalled_for, self.last_step = lifecycle, crash, stalled_for, last_step


def finding(severity, active=True, title="T"):
    return Finding("r", severity, title, "ref", "act", active=active)


def test_crash_beats_everything_and_names_the_exception():
    crash = Crash("exception", "Python exception", exception="RuntimeError: boom")
    status = run_status(Run("crashed", crash), [finding("critical")])
    assert (status.word, status.severity, status.detail, status.lifecycle) == (
        "Crashed (exception)", "critical", "RuntimeError: boom", "crashed")
    assert run_status(Run("crashed", Crash("oom", "CUDA out of memory")), []).word == "Crashed (oom)"


def test_killed_and_stalled():
    assert run_status(Run("killed", Crash("sigkill", "killed by SIGKILL")), []).detail == "killed by SIGKILL"
    status = run_status(Run("stalled", stalled_for=1800), [finding("high")])
    assert (status.word, status.detail) == ("Stalled", "no new step for 30 min after step 120")
    assert run_status(Run("stalled", stalled_for=4 * 3600), []).detail.startswith("no new step for 4.0 h")


def test_findings_decide_a_live_or_finished_run():
    assert run_status(Run(), [finding("critical"), finding("high")]).word == "Diverged (NaN)"
    unstable = run_status(Run("finished"), [finding("medium"), finding("high", title="Gradient explosion")])
    assert (unstable.word, unstable.severity, unstable.detail, unstable.lifecycle) == (
        "Unstable", "high", "Gradient explosion", "finished")
    assert run_status(Run(), [finding("medium")]).word == "Partially unstable"


def test_cleared_and_low_findings_leave_a_run_healthy():
    status = run_status(Run(), [finding("critical", active=False), finding("low", title="Loss plateaued early")])
    assert (status.word, status.severity, status.detail) == ("Healthy", "ok", "Loss plateaued early")
    assert run_status(Run(), []).word == "Healthy"


def test_a_run_model_with_a_lifecycle_method_works_too():
    class MethodRun:
        crash, stalled_for, last_step = None, 600.0, 9

        def lifecycle(self, now=None):
            return "stalled"

    assert run_status(MethodRun(), []).word == "Stalled"
