"""The RLHF Run Diagnostic Report: content, Markdown safety, golden files, file writing and the CLI.

Golden files: `tests/fixtures/report_golden/<run>.md`, rendered from the real runs with a fixed
`generated` time. After a deliberate change, regenerate them with
`RLHF_TOP_UPDATE_GOLDEN=1 pytest tests/test_report.py` and read the diff before keeping it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search import examples
from markdown_it import MarkdownIt

from rlhf_tui.cli import main
from rlhf_tui.core.records import Crash, Record, Update
from rlhf_tui.core.run import Run, SourceFile
from rlhf_tui.session import open_session
from rlhf_tui.rules import Diagnosis, Finding, Status, Threshold
from rlhf_tui.report import build_report, iso_time, render_json, render_markdown, write_new_file

GOLDEN = Path(__file__).parent / "fixtures" / "report_golden"
REAL = ("dpo_crash", "dpo_stuck", "grpo_small", "sft_small")
FIXED = datetime(2026, 11, 26, 2, 0, 0, tzinfo=timezone.utc)
SECTIONS = ["RLHF Run Diagnostic Report", "Run Summary", "Key Insights", "Recommended Actions"]
WITH_POSTMORTEM = ["RLHF Run Diagnostic Report", "Run Summary", "Key Insights", "Postmortem", "Recommended Actions"]
CRASHED = ("Crashed (exception)", "critical")
SHORT_TRACEBACK = "Traceback (most recent call last):\nValueError: x"


def finding(
    rule_id, severity, title, message, reference="", action="", first=None, last=None, active=True, value=None,
    threshold=None,
) -> Finding:
    return Finding(
        rule_id, severity, title, reference, action, message=message, first_step=first, fired_step=first,
        last_step=last, active=active, value=value, threshold=threshold,
    )


def make_run(
    tmp_path: Path,
    trainer: str,
    rows: list[tuple[int, dict[str, float]]],
    *,
    name: str = "exp",
    facts: dict | None = None,
    finished: bool = True,
    crash: Crash | None = None,
    findings: tuple[Finding, ...] = (),
    status: tuple[str, str] = ("Healthy", "ok"),
) -> Run:
    root = str(tmp_path / "runs")
    run = Run(os.path.join(root, name), root)
    source = SourceFile(os.path.join(run.path, "metrics.jsonl"), "metrics", "ptt")
    run.files[source.path] = source
    records = [Record(step, 1_700_000_000.0 + step, values) for step, values in rows]
    facts = {"trainer": trainer, **(facts or {})}
    run.apply(source, Update(records=records, facts=facts, finished=finished, crash=crash))
    DIAGNOSED[run] = (tuple(findings), status)
    return run


DIAGNOSED: dict[Run, tuple[tuple[Finding, ...], tuple[str, str]]] = {}


def report_of(run: Run, generated: datetime = FIXED):
    """The report as of `generated`, with the findings and status `make_run` was given."""
    findings, (word, level) = DIAGNOSED[run]
    lifecycle = run.lifecycle(generated.timestamp())
    return build_report(run, Diagnosis(findings, Status(word, level, "", lifecycle)), generated)


def dpo_rows(n: int = 5) -> list[tuple[int, dict[str, float]]]:
    return [
        (
            s,
            {
                "loss": 0.6931 - 0.01 * s,
                "rewards/accuracies": 0.5 + 0.05 * s,
                "rewards/margins": 0.01 * s,
                "rewards/chosen": 0.02 * s,
                "rewards/rejected": 0.01 * s,
            },
        )
        for s in range(1, n + 1)
    ]


def parse(text: str) -> list:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)


def headings(text: str) -> list[str]:
    tokens = parse(text)
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def summary_lines(text: str) -> dict[str, str]:
    section = text.split("### Run Summary\n", 1)[1].split("\n\n", 1)[0]
    return dict(line[2:].split(": ", 1) for line in section.splitlines())


def without_generated(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("Generated: "))


def assert_clean(text: str) -> None:
    assert "\n\n\n" not in text, "two blank lines in a row"
    assert not text.startswith("\n") and text.endswith("\n") and not text.endswith("\n\n")
    assert all(line == line.rstrip() for line in text.splitlines()), "trailing whitespace"


# --- the real runs ------------------------------------------------------------------------------


def real_report(real_runs: Path, name: str):
    session = open_session([str(real_runs / name)])
    session.load()
    (run,) = session.runs()
    return build_report(run, session.diagnosis(run), generated=FIXED)


@pytest.mark.parametrize("name", REAL)
def test_golden_reports_of_the_real_runs(real_runs, name):
    text = render_markdown(real_report(real_runs, name))
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("RLHF_TOP_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    assert_clean(text)


def test_the_crashed_run_reads_as_crashed_with_its_exception(real_runs):
    report = real_report(real_runs, "dpo_crash")
    text = render_markdown(report)
    assert "**Status:** Crashed (exception)" in text
    assert headings(text) == [*WITH_POSTMORTEM, "Configuration"]
    assert "- `beta`: `0.1`" in text.split("### Configuration")[1]
    assert report.postmortem.last_step == 11
    assert report.postmortem.traceback[-1].startswith("RuntimeError: deliberate crash")
    assert "- Timestamp: 2026-11-26T01:32:58.583098Z" in text
    assert summary_lines(text)["Final DPO Loss"] == "0.6914"
    assert "Reward Mean" not in text
    assert report.is_problem


def test_the_stuck_run_says_so_once_with_an_action(real_runs):
    report = real_report(real_runs, "dpo_stuck")
    high = [i for i in report.insights if i.severity in ("high", "critical")]
    assert [i.rule_id for i in high] == ["dpo_no_signal"] and "0.6931" in high[0].message
    assert report.actions and report.is_problem
    lines = summary_lines(render_markdown(report))
    assert lines["Final DPO Loss"] == "0.6931"
    assert lines["Final Win Rate"] == "0.0%"


def test_the_healthy_sft_run_is_stable(real_runs):
    report = real_report(real_runs, "sft_small")
    text = render_markdown(report)
    assert "**Status:** Stable" in text
    assert not report.is_problem and report.postmortem is None
    lines = summary_lines(text)
    assert lines["Final SFT Loss"] == "2.5861"  # the last step, not the run average 2.8636
    assert float(lines["Final Perplexity"]) == pytest.approx(math.exp(2.5861), rel=1e-3)
    assert lines["Run-Average Loss (trainer summary, not a step)"] == "2.8636"


# --- content ------------------------------------------------------------------------------------


def test_sections_come_in_order_and_postmortem_only_for_abnormal_ends(tmp_path):
    healthy = render_markdown(report_of(make_run(tmp_path, "dpo", dpo_rows())))
    assert headings(healthy) == SECTIONS
    assert healthy.startswith("## RLHF Run Diagnostic Report\n\nGenerated: 2026-11-26T02:00:00.000000Z\n\n")
    assert "**Trainer:** DPO | **Status:** Stable\n" in healthy
    crash = Crash("exception", "Python exception", "ValueError: x", SHORT_TRACEBACK)
    crashed = make_run(tmp_path, "dpo", dpo_rows(), finished=False, crash=crash, status=CRASHED)
    assert headings(render_markdown(report_of(crashed))) == WITH_POSTMORTEM


def test_generated_is_utc_with_z():
    run_time = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert iso_time(run_time) == "2026-01-01T10:00:00.000000Z"
    assert iso_time(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00.000000Z"


def test_dpo_summary_lines_say_what_the_values_are(tmp_path):
    facts = {"beta": 0.1, "max_steps": 10, "summary": {"train_loss": 0.5}}
    run = make_run(tmp_path, "dpo", dpo_rows(), facts=facts, finished=False)
    lines = summary_lines(render_markdown(report_of(run)))
    assert lines == {
        "Run": "`exp`",
        "Steps": "5 of 10",
        "Beta": "0.1",
        "Final DPO Loss": "0.6431",
        "Mean Win Rate": "65.0%",
        "Final Win Rate": "75.0%",
        "Final Reward Margin (chosen - rejected)": "0.05",
        "Final Chosen Reward (implicit, beta-scaled log-ratio)": "0.1",
        "Final Rejected Reward (implicit, beta-scaled log-ratio)": "0.05",
        "Run-Average Loss (trainer summary, not a step)": "0.5000",
    }


def test_summary_lines_per_trainer_only_for_metrics_the_run_has(tmp_path):
    grpo_rows = [
        (1, {"reward": 0.2, "reward_std": 0.3, "kl": 0.0, "entropy": 3.7, "completions/mean_length": 40.0}),
        (2, {"reward": 0.5, "reward_std": 0.2, "kl": 0.01, "entropy": 3.5, "completions/mean_length": 42.5}),
    ]
    grpo = make_run(tmp_path, "grpo", grpo_rows, name="grpo")
    assert list(summary_lines(render_markdown(report_of(grpo)))) == [
        "Run", "Steps", "Final Reward", "Final Reward Std", "Final KL", "Final Entropy", "Final Completion Length",
    ]
    ppo_row = {
        "loss": 1.0,
        "objective/entropy": 2.0,
        "loss/value_avg": 0.3,
        "policy/clipfrac_avg": 0.12,
        "objective/kl": 0.05,
    }
    ppo = make_run(tmp_path, "ppo", [(1, ppo_row)], name="ppo")
    assert summary_lines(render_markdown(report_of(ppo))) == {
        "Run": "`ppo`",
        "Steps": "1",
        "Final Loss": "1.0000",
        "Final Entropy": "2",
        "Final Value Loss": "0.3000",
        "Final Clip Fraction": "12.0%",
        "Final KL": "0.05",
    }
    sft = make_run(tmp_path, "sft", [(1, {"loss": 2.0}), (2, {"loss": 1.5})], name="sft")
    lines = summary_lines(render_markdown(report_of(sft)))
    assert lines["Final SFT Loss"] == "1.5000"
    assert lines["Final Perplexity"] == f"{math.exp(1.5):.2f}"


def test_nan_is_shown_as_nan_with_a_note(tmp_path):
    rows = [(1, {"loss": 0.69}), (2, {"loss": math.inf}), (3, {"loss": math.nan})]
    run = make_run(tmp_path, "sft", rows)
    report = report_of(run)
    lines = summary_lines(render_markdown(report))
    assert lines["Final SFT Loss"] == "NaN (2 of 3 logged values non-finite, first at step 2)"
    assert lines["Final Perplexity"].startswith("NaN (")
    document = json.loads(json.dumps(render_json(report), allow_nan=False))
    assert [line["value"] for line in document["summary"] if line["label"] == "Final SFT Loss"] == [None]


def test_a_metric_logged_less_often_says_at_which_step(tmp_path):
    rows = [(1, {"loss": 0.7, "rewards/accuracies": 0.5}), (2, {"loss": 0.6})]
    lines = summary_lines(render_markdown(report_of(make_run(tmp_path, "dpo", rows))))
    assert lines["Final Win Rate"] == "50.0% (last logged at step 1)"
    assert lines["Mean Win Rate"] == "50.0%"


def test_eval_loss_has_its_own_line(tmp_path):
    run = make_run(tmp_path, "sft", [(1, {"loss": 2.0}), (2, {"loss": 1.8}), (3, {"loss": 1.7})])
    source = next(iter(run.files.values()))
    run.apply(source, Update(records=[Record(2, None, {"loss": 1.9}, "eval")]))
    lines = summary_lines(render_markdown(report_of(run)))
    assert lines["Final SFT Loss"] == "1.7000"
    assert lines["Final Eval Loss"] == "1.9000 (last logged at step 2)"


def test_insights_are_numbered_by_severity_with_where_and_ref_and_one_action_each(tmp_path):
    findings = (
        finding("win_rate_volatile", "medium", "Win rate unstable", "Win rate swings (std 0.35).", "",
                "Increase the batch size.", 10, 30, False),
        finding("dpo_loss_stuck", "high", "DPO loss at random chance", "DPO loss stuck at ln 2 (0.6931).",
                "Rafailov et al. (2023) 'DPO', Section 4.2", "Raise the learning rate.", 12, 80, True),
        finding("margin_flat", "low", "Margin flat", "Reward margin not growing", "", "Raise the learning rate.",
                40, 40, False),
        finding("lr_zero", "high", "Learning rate zero", "Learning rate is 0 after warm-up.", "", "", 5, None, True),
    )
    run = make_run(tmp_path, "dpo", dpo_rows(), findings=findings, status=("Unstable", "high"))
    report = report_of(run)
    text = render_markdown(report)
    section = text.split("### Key Insights\n\n", 1)[1].split("\n\n### ", 1)[0]
    assert section.split("\n\n") == [
        "1. [HIGH] Learning rate is 0 after warm-up (since step 5, active).",
        "2. [HIGH] DPO loss stuck at ln 2 (0.6931) (since step 12, active).\n"
        "   *Ref: Rafailov et al. (2023) 'DPO', Section 4.2*",
        "3. [MEDIUM] Win rate swings (std 0.35) (steps 10-30, cleared).",
        "4. [LOW] Reward margin not growing (step 40, cleared)",
    ]
    assert text.split("### Recommended Actions\n\n", 1)[1] == (
        "- DPO loss at random chance: Raise the learning rate.\n- Win rate unstable: Increase the batch size.\n"
    )
    assert report.is_problem
    assert_clean(text)


def test_no_findings_no_actions(tmp_path):
    report = report_of(make_run(tmp_path, "dpo", dpo_rows()))
    text = render_markdown(report)
    assert "### Key Insights\n\nNo metric rule fired.\n" in text
    assert text.endswith("### Recommended Actions\n\nNo action needed.\n")
    assert not report.is_problem


def test_a_long_traceback_keeps_its_end_and_says_how_much_was_cut(tmp_path):
    frames = [f'  File "/src/mod{i}.py", line {i}, in f{i}\n    call_{i}()' for i in range(20)]
    error = "torch.OutOfMemoryError: CUDA out of memory."
    traceback = "Traceback (most recent call last):\n" + "\n".join(frames) + f"\n{error}\n"
    crash = Crash("oom", "CUDA out of memory", error, traceback, 7, 1_700_000_007.5)
    status = ("Crashed (oom)", "critical")
    run = make_run(tmp_path, "grpo", [(7, {"reward": 0.1})], finished=False, crash=crash, status=status)
    report = report_of(run)
    text = render_markdown(report)
    postmortem = text.split("### Postmortem\n", 1)[1].split("\n\n### ", 1)[0]
    kept = postmortem.split("```\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert postmortem.startswith(
        "**Exit Reason:** oom — CUDA out of memory\n- Last Step: 7\n- Timestamp: 2023-11-14T22:13:27.500000Z\n"
        "- Exception: `torch.OutOfMemoryError: CUDA out of memory.`\n\nTraceback (truncated):\n```\n"
    )
    assert kept[0] == "Traceback (most recent call last):"
    assert kept[1] == f"  ... {report.postmortem.lines_cut} earlier lines cut ..."
    assert kept[2].startswith("  File ") and kept[-2:] == ["    call_19()", error]
    assert len(kept) <= 16 and report.postmortem.lines_cut + len(kept) - 1 == 42  # the cut note is not one of them
    assert report.is_problem


def test_a_short_traceback_is_kept_whole(tmp_path):
    traceback = 'Traceback (most recent call last):\n  File "t.py", line 1, in <module>\nKeyError: \'x\'\n'
    crash = Crash("exception", "Python exception", "KeyError: 'x'", traceback, 3)
    run = make_run(tmp_path, "sft", [(3, {"loss": 1.0})], finished=False, crash=crash, status=CRASHED)
    text = render_markdown(report_of(run))
    assert "### Postmortem\n**Exit Reason:** exception\n- Last Step: 3\n" in text  # the exception line says more
    assert "Traceback:\n```\n" + traceback + "```\n" in text
    assert "cut" not in text
    assert text.endswith("### Recommended Actions\n\nNone from the metrics; the Postmortem says how the run ended.\n")


def test_a_killed_run_is_reported_as_killed(tmp_path):
    facts = {"pid": 4242, "host": "gpu7"}
    run = make_run(tmp_path, "dpo", dpo_rows(), finished=False, facts=facts, status=("Killed", "critical"))
    run.process_alive = False
    report = report_of(run)
    text = render_markdown(report)
    assert "**Status:** Killed" in text
    assert "**Exit Reason:** killed — process 4242 on gpu7 is gone and the run never logged a normal end\n" in text
    assert "- Last Step: 5\n- Timestamp: 2023-11-14T22:13:25.000000Z (last data seen)\n" in text
    assert report.postmortem.end == "killed" and report.is_problem


def test_a_sigkill_crash_is_a_killed_end(tmp_path):
    crash = Crash("sigkill", "killed (SIGKILL)", None, None, 5)
    run = make_run(tmp_path, "dpo", dpo_rows(), finished=False, crash=crash, status=("Killed", "critical"))
    report = report_of(run)
    assert report.postmortem.end == "killed"
    assert "**Exit Reason:** sigkill — killed (SIGKILL)\n- Last Step: 5\n" in render_markdown(report)


def test_a_stalled_run_gets_a_postmortem_saying_so(tmp_path):
    run = make_run(tmp_path, "dpo", dpo_rows(), finished=False, status=("Stalled", "high"))
    an_hour_later = datetime.fromtimestamp(run.last_data_time + 3600, timezone.utc)
    report = report_of(run, an_hour_later)
    assert report.lifecycle == "stalled" and report.postmortem.end == "stalled"
    assert "**Exit Reason:** stalled — no new data for 60 min\n" in render_markdown(report)


def test_a_run_quiet_for_years_has_stopped_and_its_postmortem_says_since_when(tmp_path):
    run = make_run(tmp_path, "dpo", dpo_rows(), finished=False, status=("Stopped", "ok"))
    report = report_of(run)  # its last step is from 2023
    assert report.lifecycle == "stopped" and report.postmortem.end == "stopped"
    assert "**Exit Reason:** stopped — no new data for 1107 days\n" in render_markdown(report)


# --- Markdown safety ----------------------------------------------------------------------------

HOSTILE = "# Title <script>alert(1)</script> *a* _b_ `c` ``` | x | [l](javascript:alert(1)) &amp; \\ ~~s~~"


def test_hostile_run_text_cannot_change_the_document_structure(tmp_path):
    traceback = (
        "Traceback (most recent call last):\n```\n## not a heading\n````\n\n\n\n- item\n<div>\n"
        + "\n".join(f'  File "x{i}.py", line 1\n    ```{"`" * i}' for i in range(12))
        + f"\nRuntimeError: {HOSTILE}\x1b[31m red\x1b[0m\r\n"
    )
    crash = Crash("exception", HOSTILE, f"RuntimeError: {HOSTILE}", traceback, 5, 1_700_000_005.0)
    findings = (
        finding("r1", "high", HOSTILE, f"loss {HOSTILE}\n\n## injected", HOSTILE + "*", HOSTILE, 1, None, True),
        finding("r2", "low", "t", "fine.", "", "", 2, 3, False),
    )
    status = (f"Crashed ({HOSTILE})", "critical")
    run = make_run(tmp_path, "dpo", dpo_rows(), name=HOSTILE, finished=False, crash=crash, findings=findings,
                   status=status, facts={"model_name": HOSTILE, "config": {HOSTILE: HOSTILE, "beta": 0.1}})
    report = report_of(run)
    text = render_markdown(report)
    assert_clean(text)
    assert headings(text) == [*WITH_POSTMORTEM, "Configuration"]
    assert [t.tag for t in parse(text) if t.type == "heading_open"] == ["h2", "h3", "h3", "h3", "h3", "h3"]
    tokens = parse(text)
    fences = [t for t in tokens if t.type in ("fence", "code_block")]
    assert len(fences) == 1 and fences[0].content.splitlines() == report.postmortem.traceback
    assert fences[0].content.rstrip("\n").endswith("RuntimeError: " + HOSTILE + " red")
    assert not [t for t in tokens if t.type in ("html_block", "table_open", "hr")]
    inline = [c for t in tokens if t.type == "inline" for c in t.children]
    assert not [c.type for c in inline if c.type in ("html_inline", "link_open", "s_open")]
    assert sum(c.type == "strong_open" for c in inline) == 3  # **Trainer:**, **Status:**, **Exit Reason:**
    assert sum(c.type == "em_open" for c in inline) == 1  # *Ref: ...*
    assert HOSTILE in [c.content for c in inline if c.type == "code_inline"]  # the run name, verbatim
    items = len(report.summary) + len(report.insights) + 3 + len(report.actions) + 2  # 3: Last Step, Timestamp, Exception; 2 config keys
    assert sum(t.type == "list_item_open" for t in tokens) == items
    rendered_text = "".join(c.content for c in inline if c.type == "text")
    assert f"loss {HOSTILE} ## injected" in rendered_text
    assert f"Ref: {HOSTILE}*" in rendered_text


MARKDOWN_ALPHABET = st.text(st.sampled_from(list("`*_#<>|[]()!&;~\\-+=.1 \n\r\tab\x1b")), max_size=40)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=MARKDOWN_ALPHABET.filter(lambda n: "/" not in n and n.strip(" .") != ""),
    message=MARKDOWN_ALPHABET,
    title=MARKDOWN_ALPHABET,
    reference=MARKDOWN_ALPHABET,
    action=MARKDOWN_ALPHABET,
    traceback=st.lists(MARKDOWN_ALPHABET, max_size=30).map("\n".join),
)
def test_no_text_from_the_run_changes_the_structure(tmp_path, name, message, title, reference, action, traceback):
    crash = Crash("exception", title, message, traceback, 5)
    findings = (finding("r", "high", title, message, reference, action, 1),)
    run = make_run(tmp_path, "dpo", dpo_rows(1), name=name, finished=False, crash=crash, findings=findings,
                   status=(f"Crashed ({title})", "critical"), facts={"config": {title: message}})
    report = report_of(run)
    text = render_markdown(report)
    assert_clean(text)
    tokens = parse(text)
    assert headings(text) == [*WITH_POSTMORTEM, "Configuration"]
    assert not [t.type for t in tokens if t.type in ("html_block", "table_open", "hr", "blockquote_open")]
    inline = [c for t in tokens if t.type == "inline" for c in t.children]
    assert not [c.type for c in inline if c.type in ("html_inline", "link_open", "image", "s_open")]
    fences = [t for t in tokens if t.type in ("fence", "code_block")]
    kept = report.postmortem.traceback
    assert [f.content.splitlines() for f in fences] == ([kept] if kept else [])
    exception = 1 if report.postmortem.exception else 0
    items = len(report.summary) + len(report.insights) + 2 + exception + len(report.actions) + len(report.config)
    assert sum(t.type == "list_item_open" for t in tokens) == items


def test_a_code_span_holds_backticks_at_its_edges(tmp_path):
    run = make_run(tmp_path, "dpo", dpo_rows(), name="`tick` and ``two``")
    tokens = parse(render_markdown(report_of(run)))
    codes = [c.content for t in tokens if t.type == "inline" for c in t.children if c.type == "code_inline"]
    assert codes == ["`tick` and ``two``"]


# --- JSON ---------------------------------------------------------------------------------------


def test_json_has_the_same_content(tmp_path):
    crash = Crash("exception", "Python exception", "ValueError: x", SHORT_TRACEBACK, 5)
    threshold = Threshold("loss", 0.5)
    findings = (finding("a", "high", "A", "Something.", "Ref.", "Do it.", 2, None, True, math.nan, threshold),)
    run = make_run(tmp_path, "dpo", dpo_rows(), finished=False, crash=crash, findings=findings, status=CRASHED)
    report = report_of(run)
    document = json.loads(json.dumps(render_json(report), allow_nan=False))
    text = render_markdown(report)
    assert document["generated"] == "2026-11-26T02:00:00.000000Z" and document["status"] == "Crashed (exception)"
    assert {line["label"]: line["text"] for line in document["summary"]} == {
        label: value.split(" (")[0].strip("`") for label, value in summary_lines(text).items()
    }
    assert document["insights"][0]["value"] is None
    assert document["insights"][0]["threshold"] == {"role": "loss", "value": 0.5}
    assert document["postmortem"]["exit_reason"] == "exception" and document["postmortem"]["last_step"] == 5
    assert document["actions"] == ["A: Do it."] and document["is_problem"] is True


# --- write_new_file -----------------------------------------------------------------------------


def test_write_new_file_creates_and_never_overwrites_without_force(tmp_path):
    target = tmp_path / "report.md"
    write_new_file(target, "one\n")
    assert target.read_text() == "one\n"
    with pytest.raises(FileExistsError):
        write_new_file(target, "two\n")
    assert target.read_text() == "one\n"
    write_new_file(target, "three\n", force=True)
    assert target.read_text() == "three\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]  # no temporary file left


def test_write_new_file_does_not_follow_a_dangling_link(tmp_path):
    link = tmp_path / "report.md"
    link.symlink_to(tmp_path / "elsewhere.md")
    with pytest.raises(FileExistsError):
        write_new_file(link, "x\n")
    assert not (tmp_path / "elsewhere.md").exists()


def test_write_new_file_into_a_missing_directory_says_which(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        write_new_file(tmp_path / "nope" / "report.md", "x\n")
    assert str(tmp_path / "nope") in error.value.strerror
    assert not (tmp_path / "nope").exists()


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_prints_the_report_and_exits_by_health(real_runs, capsys):
    assert main(["report", str(real_runs / "sft_small")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## RLHF Run Diagnostic Report\n") and "**Status:** Stable" in out
    for name in ("dpo_crash", "dpo_stuck"):
        assert main(["report", str(real_runs / name)]) == 1
        assert "### Key Insights" in capsys.readouterr().out


def test_cli_writes_a_file_and_refuses_to_overwrite_without_force(real_runs, tmp_path, capsys):
    target = tmp_path / "out.md"
    assert main(["report", str(real_runs / "dpo_crash"), "-o", str(target)]) == 1
    written = target.read_text()
    assert written.startswith("## RLHF Run Diagnostic Report\n") and capsys.readouterr().out == ""
    target.write_text("mine\n")
    assert main(["report", str(real_runs / "dpo_crash"), "-o", str(target)]) == 2
    assert "exists" in capsys.readouterr().err and target.read_text() == "mine\n"
    assert main(["report", str(real_runs / "dpo_crash"), "-o", str(target), "--force"]) == 1
    assert without_generated(target.read_text()) == without_generated(written)
    assert main(["report", str(real_runs / "dpo_crash"), "-o", str(tmp_path / "no" / "out.md")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_json_gives_the_same_content(real_runs, capsys):
    assert main(["report", "--json", str(real_runs / "dpo_crash")]) == 1
    document = json.loads(capsys.readouterr().out)
    expected = render_json(real_report(real_runs, "dpo_crash"))
    document.pop("generated"), expected.pop("generated")
    assert document == json.loads(json.dumps(expected))


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path)]) == 2
    assert "no run found" in capsys.readouterr().err


def test_cli_reports_every_run_a_session_finds_including_runs_inside_tracker_databases(tmp_path, capsys):
    """The path of any run, as `watch` puts it in its `open:` line, is something `report` opens."""
    launch = tmp_path / "launch"
    shutil.copytree(Path(__file__).parent / "fixtures" / "trackers" / "launch", launch)
    session = open_session([str(launch)])
    session.load()
    paths = {run.path: run.name for run in session.runs()}
    assert any(os.path.isfile(os.path.dirname(path)) for path in paths)  # DATABASE/RUN paths among them
    for path, name in paths.items():
        capsys.readouterr()
        assert main(["report", "--json", path]) in (0, 1), path
        assert json.loads(capsys.readouterr().out)["run"] == name
    assert main(["report", str(launch / "mlflow.db" / "no-such-run")]) == 2
