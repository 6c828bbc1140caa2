"""The content of the "RLHF Run Diagnostic Report", collected once from a run and its diagnosis.

`build_report(run, diagnosis)` gives a plain `Report`; markdown.py and as_json.py are two views of it.
Text from the run and from rule files is kept as clean one-line text here; escaping is the views' job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from rlhf_tui.core.display import format_duration
from rlhf_tui.core.metrics import PREFERENCE
from rlhf_tui.core.run import Run
from rlhf_tui.core.series import Series
from rlhf_tui.core.text import clean, one_line
from rlhf_tui.rules import Diagnosis, Finding, severity

TITLE = "RLHF Run Diagnostic Report"
ABNORMAL_ENDS = ("crashed", "killed", "stalled", "stopped")
KILL_REASONS = ("sigkill", "killed")  # crash reasons that mean the process was killed (OOM killer, kill -9)
TRACEBACK_KEEP = 16  # lines of traceback kept (the end of it), the cut note included
TEXT_LIMIT = 4000  # characters of one line of run or rule text

# Summary lines per trainer family: (role, label, how). how: "loss" 4 decimals, "pct" a fraction shown
# as a percentage, "num" 4 significant digits; "mean:<how>" is the mean over all logged steps.
# "{trainer}" in a label is the trainer's name (PTT's "Final DPO Loss").
_PREFERENCE_LINES = (
    ("loss", "Final {trainer} Loss", "loss"),
    ("win_rate", "Mean Win Rate", "mean:pct"),
    ("win_rate", "Final Win Rate", "pct"),
    ("margin", "Final Reward Margin (chosen - rejected)", "num"),
    ("chosen_reward", "Final Chosen Reward (implicit, beta-scaled log-ratio)", "num"),
    ("rejected_reward", "Final Rejected Reward (implicit, beta-scaled log-ratio)", "num"),
    ("kl", "Final KL", "num"),
)
_GROUP_LINES = (
    ("reward", "Final Reward", "num"),
    ("reward_std", "Final Reward Std", "num"),
    ("frac_reward_zero_std", "Final Groups With Zero Reward Std", "pct"),
    ("kl", "Final KL", "num"),
    ("entropy", "Final Entropy", "num"),
    ("completion_length", "Final Completion Length", "num"),
    ("clipped_ratio", "Final Clipped Completions (hit max length)", "pct"),
)
_PPO_LINES = (
    ("reward", "Final Reward", "num"),
    ("loss", "Final Loss", "loss"),
    ("entropy", "Final Entropy", "num"),
    ("value_loss", "Final Value Loss", "loss"),
    ("clip_ratio", "Final Clip Fraction", "pct"),
    ("kl", "Final KL", "num"),
    ("approx_kl", "Final Approx KL", "num"),
)
_ONLINE_DPO_LINES = (
    ("reward", "Final Reward", "num"),
    ("loss", "Final Loss", "loss"),
    ("win_rate", "Mean Win Rate", "mean:pct"),
    ("win_rate", "Final Win Rate", "pct"),
    ("margin", "Final Reward Margin (chosen - rejected)", "num"),
    ("kl", "Final KL", "num"),
    ("entropy", "Final Entropy", "num"),
)
_SFT_LINES = (
    ("loss", "Final SFT Loss", "loss"),
    ("loss", "Final Perplexity", "ppl"),
    ("token_accuracy", "Final Token Accuracy", "pct"),
)
_REWARD_MODEL_LINES = (
    ("loss", "Final Loss", "loss"),
    ("win_rate", "Mean Accuracy", "mean:pct"),
    ("win_rate", "Final Accuracy", "pct"),
    ("margin", "Final Margin", "num"),
)
_OTHER_LINES = (
    ("loss", "Final Loss", "loss"),
    ("reward", "Final Reward", "num"),
    ("win_rate", "Final Win Rate", "pct"),
    ("kl", "Final KL", "num"),
    ("entropy", "Final Entropy", "num"),
)


_LINES_BY_TRAINER = {
    **{trainer: _PREFERENCE_LINES for trainer in PREFERENCE},
    "grpo": _GROUP_LINES,
    "rloo": _GROUP_LINES,
    "ppo": _PPO_LINES,
    "online_dpo": _ONLINE_DPO_LINES,
    "sft": _SFT_LINES,
    "reward": _REWARD_MODEL_LINES,
}


@dataclass
class SummaryLine:
    label: str
    value: float | int | str | None  # the number (NaN as logged) or the text, None when unknown
    text: str  # the value as printed (plain text: Markdown escaping is the renderer's job)
    step: int | None = None  # the step the value was logged at
    note: str | None = None  # what the reader must know about the value (non-finite, older step)
    verbatim: bool = False  # shown as a code span (names from the run)


@dataclass
class Insight:
    rule_id: str
    severity: str
    title: str
    message: str
    reference: str | None
    action: str | None
    first_step: int | None
    last_step: int | None
    active: bool
    value: float | None  # the rule's headline number at last_step
    threshold: float | None  # the line the rule draws on the chart of `threshold_role`
    threshold_role: str | None

    @property
    def where(self) -> str | None:
        """(since step 12, active) / (steps 12-30, cleared): where in the run the rule fired."""
        if self.first_step is None:
            return "active" if self.active else None
        if self.active:
            return f"since step {self.first_step}, active"
        if self.last_step is None or self.last_step == self.first_step:
            return f"step {self.first_step}, cleared"
        return f"steps {self.first_step}-{self.last_step}, cleared"


@dataclass
class Postmortem:
    end: str  # "crashed", "killed", "stalled" or "stopped"
    reason: str  # exit reason word: exception, oom, sigkill, killed, stalled, ...
    detail: str | None  # what a person reads: "CUDA out of memory", "no new data for 12 min"
    last_step: int | None
    time: float | None  # unix seconds: when it crashed, or else when the run last wrote data
    time_is_last_data: bool  # True when `time` is only the last data seen, not the moment it ended
    exception: str | None  # the final exception line
    traceback: list[str] | None  # the kept end of the traceback, the cut note first when cut
    lines_cut: int = 0


@dataclass
class Report:
    generated: datetime
    run_name: str
    trainer: str
    status: str
    status_severity: str
    lifecycle: str
    summary: list[SummaryLine] = field(default_factory=list)
    insights: list[Insight] = field(default_factory=list)
    postmortem: Postmortem | None = None
    actions: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # the run's flat configuration, sorted by key

    @property
    def is_problem(self) -> bool:
        """High or critical findings, or a crashed/killed run: what CI should fail on."""
        return (
            self.lifecycle in ("crashed", "killed")
            or self.status_severity in severity.PROBLEM
            or any(i.severity in severity.PROBLEM for i in self.insights)
        )


def build_report(run: Run, diagnosis: Diagnosis, generated: datetime | None = None) -> Report:
    """The report of `run` as of `generated` (now by default), whose diagnosis is `diagnosis`."""
    generated = datetime.now(timezone.utc) if generated is None else utc(generated)
    status = diagnosis.status
    lifecycle = status.lifecycle
    insights = sorted(
        (_insight(f) for f in diagnosis.findings),
        key=lambda i: (severity.rank(i.severity), i.first_step or 0),
    )
    return Report(
        generated=generated,
        run_name=run.name,
        trainer=run.trainer_label,
        status=_status_word(status.word),
        status_severity=status.severity,
        lifecycle=lifecycle,
        summary=_summary(run),
        insights=insights,
        postmortem=_postmortem(run, lifecycle, generated.timestamp()) if lifecycle in ABNORMAL_ENDS else None,
        actions=_actions(insights),
        config=dict(sorted((run.facts.get("config") or {}).items())),
    )


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _status_word(word: str) -> str:
    """PTT's word for a run with nothing wrong is "Stable"."""
    return "Stable" if word == "Healthy" else word


def _insight(finding: Finding) -> Insight:
    title = plain_line(finding.title)
    return Insight(
        rule_id=finding.rule_id,
        severity=finding.severity,
        title=title,
        message=plain_line(finding.message) or title,
        reference=plain_line(finding.reference) or None,
        action=plain_line(finding.action) or None,
        first_step=finding.first_step,
        last_step=finding.last_step,
        active=bool(finding.active),
        value=finding.value,
        threshold=finding.threshold.value if finding.threshold is not None else None,
        threshold_role=finding.threshold.role if finding.threshold is not None else None,
    )


def _actions(insights: list[Insight]) -> list[str]:
    actions: dict[str, str] = {}
    for insight in insights:
        if insight.action and insight.action not in actions:
            actions[insight.action] = f"{insight.title}: {insight.action}" if insight.title else insight.action
    return list(actions.values())


def _summary(run: Run) -> list[SummaryLine]:
    lines = [SummaryLine("Run", run.name, run.name, verbatim=True)]
    last_step = run.last_step
    if last_step is None:
        lines.append(SummaryLine("Steps", None, "none logged"))
    elif run.max_steps and last_step < run.max_steps:
        lines.append(SummaryLine("Steps", last_step, f"{last_step} of {run.max_steps}"))
    else:
        lines.append(SummaryLine("Steps", last_step, str(last_step)))
    for key, label in (("model_name", "Model"), ("loss_type", "Loss Type"), ("beta", "Beta")):
        value = run.facts.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and plain_line(str(value)):
            lines.append(SummaryLine(label, value, plain_line(str(value))))
    trainer = run.trainer
    for role, label, how in _LINES_BY_TRAINER.get(trainer, _OTHER_LINES):
        series = run.role(role)
        if series is None or not len(series):
            continue
        label = label.format(trainer=run.trainer_label)
        if role in ("chosen_reward", "rejected_reward") and (run.role_key(role) or "").endswith("_sum"):
            label += " (batch sum)"
        lines.append(_seriesplain_line(label, how, series, last_step))
    eval_loss = run.role("eval_loss")
    if eval_loss is not None and len(eval_loss):
        lines.append(_seriesplain_line("Final Eval Loss", "loss", eval_loss, last_step))
    summary = run.facts.get("summary")
    average = summary.get("train_loss") if isinstance(summary, dict) else None
    if isinstance(average, (int, float)):
        lines.append(SummaryLine("Run-Average Loss (trainer summary, not a step)", average, _format(average, "loss")))
    return lines


def _seriesplain_line(label: str, how: str, series: Series, last_step: int | None) -> SummaryLine:
    values = series.values
    notes = []
    if how.startswith("mean:"):
        how = how[len("mean:") :]
        finite = values[np.isfinite(values)]
        value = float(finite.mean()) if finite.size else math.nan
        step = None
    else:
        value = float(values[-1])
        step = series.last_step
        if how == "ppl":
            value = _perplexity(value)
        if last_step is not None and step is not None and step < last_step:
            notes.append(f"last logged at step {step}")
    bad = series.nonfinite_count
    if bad:
        first_bad = int(series.steps[~np.isfinite(values)][0])
        notes.append(f"{bad} of {len(series)} logged values non-finite, first at step {first_bad}")
    text = _format(value, how)
    note = "; ".join(notes) or None
    return SummaryLine(label, value, text, step, note)


def _perplexity(loss: float) -> float:
    if math.isnan(loss):
        return loss
    return math.exp(loss) if loss < 700 else math.inf


def _format(value: float, how: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if how == "loss":
        return f"{value:.4f}"
    if how == "ppl":
        return f"{value:.2f}"
    if how == "pct":
        return f"{100 * value:.1f}%"
    return f"{value:.4g}"


def _postmortem(run: Run, lifecycle: str, now: float) -> Postmortem:
    crash = run.crash
    if crash is not None:
        exception = plain_line(crash.exception) or None
        kept, cut = _truncate_traceback(crash.traceback)
        return Postmortem(
            end="killed" if crash.reason in KILL_REASONS else lifecycle,
            reason=crash.reason,
            detail=None if crash.reason == "exception" and exception else plain_line(crash.label) or None,
            last_step=crash.last_step if crash.last_step is not None else run.last_step,
            time=crash.time if crash.time is not None else run.last_data_time,
            time_is_last_data=crash.time is None,
            exception=exception,
            traceback=kept,
            lines_cut=cut,
        )
    if lifecycle == "killed":
        pid, host = run.facts.get("pid"), run.facts.get("host")
        detail = f"process {pid} on {host} is gone and the run never logged a normal end"
    else:
        quiet = run.quiet_for(now)
        detail = f"no new data for {format_duration(quiet) if quiet is not None else 'an unknown time'}"
    return Postmortem(lifecycle, lifecycle, detail, run.last_step, run.last_data_time, True, None, None)


def _truncate_traceback(text: str | None) -> tuple[list[str] | None, int]:
    """The useful end of a traceback: the exception line and the frames just above it.

    Keeps the `Traceback (most recent call last):` header, cuts whole frames from the top, and says
    how many lines went. Control characters (ANSI colours, stray `\\r`) are removed and runs of
    blank lines become one.
    """
    if not text or not text.strip():
        return None, 0
    lines: list[str] = []
    for line in clean(text).split("\n"):
        line = line.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) <= TRACEBACK_KEEP:
        return lines, 0
    header = lines[:1] if lines[0].startswith("Traceback (most recent call last)") else []
    room = TRACEBACK_KEEP - len(header) - 1
    start = len(lines) - room
    for i in range(start, len(lines)):
        if _starts_frame(lines[i]):
            start = i
            break
    cut = start - len(header)
    return header + [f"  ... {cut} earlier lines cut ..."] + lines[start:], cut


def _starts_frame(line: str) -> bool:
    return line.startswith(("  File ", "Traceback ", "During handling", "The above exception"))




def plain_line(text: str | None) -> str:
    """Text from the run or a rule file as one clean line, whitespace runs made one space."""
    return " ".join(one_line(text, TEXT_LIMIT).split()) if text else ""


def iso_time(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_unix(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return iso_time(datetime.fromtimestamp(seconds, timezone.utc))
