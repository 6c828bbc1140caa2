"""The report as Markdown: PTT's layout (`## RLHF Run Diagnostic Report`, Run Summary, Key Insights,
Postmortem, Recommended Actions), then the run's configuration; safe for any text a run holds.

Text that comes from the run (its name, exception, traceback) and from rule files is untrusted: inline
text is escaped or put in a code span, the traceback goes in a fence longer than any backtick run in
it, so no input can add a heading, a list item, HTML or an unclosed fence to the document.
"""

from __future__ import annotations

import re

from rlhf_tui.core.display import format_config_value
from rlhf_tui.report.content import TITLE, Insight, Postmortem, Report, iso_time, iso_unix, plain_line

# Characters that can start Markdown or HTML inline: `_` only where it is not inside a word (it can
# then not open or close emphasis), `&` only where it would start an entity.
_SPECIAL = re.compile(r"[\\`*\[\]<|~]|(?<![^\W_])_|_(?![^\W_])|&(?=#?\w+;)")
# What starts a block (heading, quote, list, rule) when it opens a line.
_BLOCK_START = re.compile(r"^(?:[#>+-]|\d+[.)](?=\s|$))")


def _escape(text: str, line_start: bool = False) -> str:
    """One line of inline Markdown that renders as the text itself (`line_start`: it begins a line)."""
    text = _SPECIAL.sub(lambda m: "\\" + m[0], plain_line(text))
    return _BLOCK_START.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], text) if line_start else text


def _code(text: str) -> str:
    """A code span that holds any text: its backtick run is longer than any inside."""
    text = plain_line(text)
    fence = "`" * (_longest_backtick_run(text) + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


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
    if report.config:
        out += ["", "### Configuration", ""]
        out += [f"- {_code(key)}: {_code(format_config_value(value))}" for key, value in report.config.items()]
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
    when = iso_unix(postmortem.time)
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


