"""sample_runs/: the static runs read as what they are, the generator gives identical bytes every time
(and the committed runs are its current output), and the report-example run gives the example's report."""

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rlhf_tui.session import open_session
from rlhf_tui.report import build_report

SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"
GENERATOR = SAMPLE_RUNS / "make_sample_runs.py"
REAL_RUNS = ("dpo_crash", "dpo_stuck", "grpo_small", "sft_small")  # copies of real TRL runs, not generated

# run: (trainer, lifecycle, last logged step). A static run with no end marker, quiet for weeks, has stopped.
EXPECTED = {
    "dpo_broken_pipe": ("dpo", "crashed", 15),
    "dpo_crash": ("dpo", "crashed", 11),
    "dpo_healthy": ("dpo", "finished", 80),
    "dpo_killed": ("dpo", "stopped", 70),
    "dpo_stuck": ("dpo", "finished", 80),
    "grpo_cuda_oom": ("grpo", "crashed", 37),
    "grpo_reward_variance_collapse": ("grpo", "finished", 60),
    "grpo_small": ("grpo", "finished", 40),
    "kto_healthy": ("kto", "finished", 60),
    "ppo_kl_runaway": ("ppo", "finished", 100),
    "sft_nan_loss": ("sft", "finished", 80),
    "sft_small": ("sft", "finished", 30),
}
CRASHES = {"dpo_broken_pipe": ("exception", 15), "dpo_crash": ("exception", 11), "grpo_cuda_oom": ("oom", 37)}
FLAGGED = {
    "dpo_stuck": "dpo_no_signal",
    "grpo_reward_variance_collapse": "reward_variance_collapse",
    "ppo_kl_runaway": "kl_runaway",
    "sft_nan_loss": "nonfinite_loss",
}
QUIET = ("dpo_healthy", "kto_healthy", "sft_small")
SIZE_LIMIT = 1_500_000  # bytes: the repository ships these


@pytest.fixture(scope="module")
def session():
    session = open_session([str(SAMPLE_RUNS)])
    session.load()
    return session


@pytest.fixture(scope="module")
def runs(session):
    return {run.name: run for run in session.runs()}


@pytest.fixture(scope="module")
def findings(session, runs):
    return {name: session.diagnosis(run).findings for name, run in runs.items()}


def test_sample_runs_read_as_what_they_are(runs):
    assert {name: (run.trainer, run.lifecycle(), run.last_step) for name, run in runs.items()} == EXPECTED
    assert {name: (runs[name].crash.reason, runs[name].crash.last_step) for name in CRASHES} == CRASHES
    assert {name: list(run.notes) for name, run in runs.items() if run.notes} == {}


def test_failing_runs_are_flagged_and_healthy_ones_are_not(findings):
    for name, rule_id in FLAGGED.items():
        assert rule_id in {finding.rule_id for finding in findings[name] if finding.active}, name
    assert {name: [finding.rule_id for finding in findings[name]] for name in QUIET} == {name: [] for name in QUIET}


def test_the_report_example_run_gives_the_examples_report(session, runs):
    run = runs["dpo_broken_pipe"]
    report = build_report(run, session.diagnosis(run))
    assert (report.trainer, report.status) == ("DPO", "Crashed (exception)")
    summary = {line.label: line.text for line in report.summary}
    assert summary["Steps"] == "15"
    assert summary["Final DPO Loss"] == "0.6931"
    assert summary["Mean Win Rate"] == "61.7%"
    assert summary["Final Win Rate"] == "75.0%"
    postmortem = report.postmortem
    assert (postmortem.reason, postmortem.last_step) == ("exception", 15)
    assert postmortem.exception == "BrokenPipeError: [Errno 32] Broken pipe"
    assert datetime.fromtimestamp(postmortem.time, timezone.utc).isoformat() == "2025-12-17T19:26:04.880887+00:00"
    high = [i for i in report.insights if i.severity == "high"]
    assert [i.rule_id for i in high] == ["dpo_no_signal"]
    # The example's MEDIUM "win rate volatility (std=0.53)" is PTT's rolling std over steps 1-2 only;
    # with 4 pairs per batch the observed swings are binomial noise, which rlhf-top does not flag.
    assert not [i for i in report.insights if i.rule_id == "winrate_volatility"]


# numpy picks its exp/log/cos kernels by CPU (AVX-512, AVX2, baseline), and they differ in the last bit:
# the second generation runs on the baseline kernels, as on an older x86-64 machine (the names of
# features this machine lacks, or of another architecture's, are ignored).
OTHER_CPU = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX2 FMA3"}


def generate(out: Path, environment: dict[str, str] | None = None) -> dict[str, bytes]:
    subprocess.run([sys.executable, str(GENERATOR), str(out)], check=True, env={**os.environ, **(environment or {})})
    return files_under(out)


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_generator_gives_identical_bytes_on_any_cpu_and_sample_runs_is_its_output(tmp_path):
    first = generate(tmp_path / "first")
    second = generate(tmp_path / "second", OTHER_CPU)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []

    generated_runs = {name.split("/")[0] for name in first}
    assert generated_runs.isdisjoint(REAL_RUNS)
    assert generated_runs | set(REAL_RUNS) == set(EXPECTED)
    committed = {name: data for name, data in files_under(SAMPLE_RUNS).items() if name.split("/")[0] in generated_runs}
    stale = sorted(set(first) ^ set(committed)) + [name for name in first if committed.get(name, first[name]) != first[name]]
    assert stale == [], "sample_runs/ is not the generator's output: run python sample_runs/make_sample_runs.py"


def test_sample_runs_stay_small():
    assert sum(len(data) for data in files_under(SAMPLE_RUNS).values()) < SIZE_LIMIT
