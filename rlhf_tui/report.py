"""The "RLHF Run Diagnostic Report": PTT's Markdown report, kept where users know it, fixed where it lied.

`build_report(run)` collects the content once (a plain `Report`); `render_markdown` and `render_json`
are two views of it. Layout and the PTT bugs it avoids: `../shared/report-format.md`.

Text that comes from the run (its name, exception, traceback) and from rule files is untrusted: inline
text is escaped or put in a code span, the traceback goes in a fence longer than any backtick run in
it, so no input can add a heading, a list item, HTML or an unclosed fence to the document.
"""

from __future__ import annotations

import errno
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_tui.core.metrics import PREFERENCE

TITLE = "RLHF Run Diagnostic Report"
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
PROBLEM_SEVERITIES = frozenset({"critical", "high"})
ABNORMAL_ENDS = ("crashed", "killed", "stalled")
KILL_REASONS = ("sigkill", "killed")  # crash reasons that mean the process was killed (OOM killer, kill -9)
TRACEBACK_KEEP = 16  # lines of traceback kept (the end of it), the cut note included

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


# --- the content ------------------------------------------------------------------------------


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
    end: str  # "crashed", "killed" or "stalled"
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

    @property
    def is_problem(self) -> bool:
        """High or critical findings, or a crashed/killed run: what CI should fail on."""
        return (
            self.lifecycle in ("crashed", "killed")
            or self.status_severity in PROBLEM_SEVERITIES
            or any(i.severity in PROBLEM_SEVERITIES for i in self.insights)
        )


def build_report(run: Any, generated: datetime | None = None) -> Report:
    generated = datetime.now(timezone.utc) if generated is None else _utc(generated)
    lifecycle = run.lifecycle()
    status = run.status
    insights = sorted(
        (_insight(f) for f in run.findings),
        key=lambda i: (SEVERITY_RANK.get(i.severity, len(SEVERITY_RANK)), i.first_step or 0),
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
        postmortem=_postmortem(run, lifecycle) if lifecycle in ABNORMAL_ENDS else None,
        actions=_actions(insights),
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _status_word(word: str) -> str:
    """PTT's word for a run with nothing wrong is "Stable"."""
    return "Stable" if word == "Healthy" else word


def _insight(finding: Any) -> Insight:
    title = _one_line(finding.title)
    return Insight(
        rule_id=finding.rule_id,
        severity=finding.severity,
        title=title,
        message=_one_line(finding.message) or title,
        reference=_one_line(finding.reference) or None,
        action=_one_line(finding.action) or None,
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


def _summary(run: Any) -> list[SummaryLine]:
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
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and _one_line(str(value)):
            lines.append(SummaryLine(label, value, _one_line(str(value))))
    trainer = run.trainer
    for role, label, how in _LINES_BY_TRAINER.get(trainer, _OTHER_LINES):
        series = run.role(role)
        if series is None or not len(series):
            continue
        label = label.format(trainer=run.trainer_label)
        if role in ("chosen_reward", "rejected_reward") and run.role_key(role).endswith("_sum"):
            label += " (batch sum)"
        lines.append(_series_line(label, how, series, last_step))
    eval_loss = run.role("eval_loss")
    if eval_loss is not None and len(eval_loss):
        lines.append(_series_line("Final Eval Loss", "loss", eval_loss, last_step))
    average = (run.facts.get("summary") or {}).get("train_loss")
    if isinstance(average, (int, float)):
        lines.append(SummaryLine("Run-Average Loss (trainer summary, not a step)", average, _format(average, "loss")))
    return lines


def _series_line(label: str, how: str, series: Any, last_step: int | None) -> SummaryLine:
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
        if last_step is not None and step < last_step:
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


def _postmortem(run: Any, lifecycle: str) -> Postmortem:
    crash = run.crash
    if crash is not None:
        exception = _one_line(crash.exception) or None
        kept, cut = _truncate_traceback(crash.traceback)
        return Postmortem(
            end="killed" if crash.reason in KILL_REASONS else lifecycle,
            reason=crash.reason,
            detail=None if crash.reason == "exception" and exception else _one_line(crash.label) or None,
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
        detail = f"no new data for {_duration(run.quiet_for())}"
    return Postmortem(lifecycle, lifecycle, detail, run.last_step, run.last_data_time, True, None, None)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _truncate_traceback(text: str | None) -> tuple[list[str] | None, int]:
    """The useful end of a traceback: the exception line and the frames just above it.

    Keeps the `Traceback (most recent call last):` header, cuts whole frames from the top, and says
    how many lines went. Control characters (ANSI colours, stray `\\r`) are removed and runs of
    blank lines become one.
    """
    if not text or not text.strip():
        return None, 0
    lines: list[str] = []
    for line in _clean(text).split("\n"):
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


# --- Markdown ---------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Characters that can start Markdown or HTML inline: `_` only where it is not inside a word (it can
# then not open or close emphasis), `&` only where it would start an entity.
_SPECIAL = re.compile(r"[\\`*\[\]<|~]|(?<![^\W_])_|_(?![^\W_])|&(?=#?\w+;)")
# What starts a block (heading, quote, list, rule) when it opens a line.
_BLOCK_START = re.compile(r"^(?:[#>+-]|\d+[.)](?=\s|$))")


def _clean(text: str) -> str:
    """Text without terminal escapes and control characters; line ends as `\\n`."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    return _CONTROL.sub("", text.replace("\r", "\n"))


def _one_line(text: str | None) -> str:
    """Text from the run as one clean line: no control characters, whitespace runs made one space."""
    return " ".join(_clean(text).split()) if text else ""


def _escape(text: str, line_start: bool = False) -> str:
    """One line of inline Markdown that renders as the text itself (`line_start`: it begins a line)."""
    text = _SPECIAL.sub(lambda m: "\\" + m[0], _one_line(text))
    return _BLOCK_START.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], text) if line_start else text


def _code(text: str) -> str:
    """A code span that holds any text: its backtick run is longer than any inside."""
    text = _one_line(text)
    fence = "`" * (_longest_backtick_run(text) + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def iso_time(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_unix(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return iso_time(datetime.fromtimestamp(seconds, timezone.utc))


def render_markdown(report: Report) -> str:
    out = [
        f"## {TITLE}",
        "",
        f"Generated: {iso_time(report.generated)}",
        "",
        f"**Trainer:** {_escape(report.trainer)} | **Status:** {_escape(report.status)}",
        "",
        "### Run Summary",
    ]
    for line in report.summary:
        text = _code(line.text) if line.verbatim else _escape(line.text)
        note = f" ({_escape(line.note)})" if line.note else ""
        out.append(f"- {line.label}: {text}{note}")
    out += ["", "### Key Insights", ""]
    if not report.insights:
        out.append("No metric rule fired.")
    for number, insight in enumerate(report.insights, 1):
        if number > 1:
            out.append("")
        out.append(f"{number}. [{insight.severity.upper()}] {_insight_text(insight)}")
        if insight.reference:
            out.append(f"   *Ref: {_escape(insight.reference)}*")
    if report.postmortem is not None:
        out += ["", "### Postmortem", *_postmortem_lines(report.postmortem)]
    out += ["", "### Recommended Actions", ""]
    if report.actions:
        out += [f"- {_escape(action, line_start=True)}" for action in report.actions]
    elif report.postmortem is not None:
        out.append("None from the metrics; the Postmortem says how the run ended.")
    else:
        out.append("No action needed.")
    return "\n".join(out) + "\n"


def _insight_text(insight: Insight) -> str:
    message = _escape(insight.message)
    where = insight.where
    if where is None:
        return message
    if message.endswith("."):
        return f"{message[:-1]} ({where})."
    return f"{message} ({where})"


def _postmortem_lines(postmortem: Postmortem) -> list[str]:
    reason = _escape(postmortem.reason)
    if postmortem.detail and postmortem.detail.lower() != postmortem.reason.lower():
        reason += f" — {_escape(postmortem.detail)}"
    out = [f"**Exit Reason:** {reason}"]
    out.append(f"- Last Step: {postmortem.last_step if postmortem.last_step is not None else 'none logged'}")
    when = _iso_unix(postmortem.time)
    if when is None:
        out.append("- Timestamp: unknown")
    else:
        out.append(f"- Timestamp: {when}" + (" (last data seen)" if postmortem.time_is_last_data else ""))
    if postmortem.exception:
        out.append(f"- Exception: {_code(postmortem.exception)}")
    if postmortem.traceback:
        fence = "`" * max(3, _longest_backtick_run("\n".join(postmortem.traceback)) + 1)
        title = "Traceback (truncated):" if postmortem.lines_cut else "Traceback:"
        out += ["", title, fence, *postmortem.traceback, fence]
    return out


# --- JSON -------------------------------------------------------------------------------------


def render_json(report: Report) -> dict[str, Any]:
    """The same content as the Markdown, JSON-safe: NaN and Inf become null."""
    postmortem = report.postmortem
    return {
        "title": TITLE,
        "generated": iso_time(report.generated),
        "run": report.run_name,
        "trainer": report.trainer,
        "status": report.status,
        "status_severity": report.status_severity,
        "lifecycle": report.lifecycle,
        "is_problem": report.is_problem,
        "summary": [
            {
                "label": line.label,
                "value": _json_value(line.value),
                "text": line.text,
                "step": line.step,
                "note": line.note,
            }
            for line in report.summary
        ],
        "insights": [
            {
                "rule_id": i.rule_id,
                "severity": i.severity,
                "title": i.title,
                "message": i.message,
                "reference": i.reference,
                "action": i.action,
                "first_step": i.first_step,
                "last_step": i.last_step,
                "active": i.active,
                "value": _json_value(i.value),
                "threshold": None
                if i.threshold_role is None
                else {"role": i.threshold_role, "value": _json_value(i.threshold)},
            }
            for i in report.insights
        ],
        "postmortem": None
        if postmortem is None
        else {
            "end": postmortem.end,
            "exit_reason": postmortem.reason,
            "detail": postmortem.detail,
            "last_step": postmortem.last_step,
            "timestamp": _iso_unix(postmortem.time),
            "timestamp_is_last_data": postmortem.time_is_last_data,
            "exception": postmortem.exception,
            "traceback": postmortem.traceback,
            "traceback_lines_cut": postmortem.lines_cut,
        },
        "actions": report.actions,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- files ------------------------------------------------------------------------------------


def is_inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it, symlinks resolved: reports never go into runs."""
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def write_new_file(path: Path, text: str, force: bool = False) -> None:
    """Write `text` to `path`, never replacing an existing file unless `force`.

    Written to a temporary file in the same directory first, then linked into place (fails with
    FileExistsError if `path` appeared meanwhile) or, with `force`, renamed over it: a reader never
    sees half a report. A missing parent directory is a FileNotFoundError naming it.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"directory {parent} does not exist", str(path))
    if not force and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, 0o644)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
