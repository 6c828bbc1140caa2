"""The report as JSON (`rlhf-top report --json`): the same content as the Markdown, JSON-safe."""

from __future__ import annotations

import math

from rlhf_tui.report.content import TITLE, Report, iso_time, iso_unix

def render_json(report: Report) -> dict[str, object]:
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
            "timestamp": iso_unix(postmortem.time),
            "timestamp_is_last_data": postmortem.time_is_last_data,
            "exception": postmortem.exception,
            "traceback": postmortem.traceback,
            "traceback_lines_cut": postmortem.lines_cut,
        },
        "actions": report.actions,
        "config": {key: _json_value(value) for key, value in report.config.items()},
    }


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
