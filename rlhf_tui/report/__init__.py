"""The "RLHF Run Diagnostic Report": PTT's Markdown report, kept where users know it, fixed where it lied.

content.py collects it once from a run and its diagnosis; markdown.py and as_json.py render it;
files.py writes it safely.
"""

from rlhf_tui.report.as_json import render_json
from rlhf_tui.report.content import Report, build_report, iso_time
from rlhf_tui.report.files import is_inside, write_new_file
from rlhf_tui.report.markdown import render_markdown

__all__ = ["Report", "build_report", "is_inside", "iso_time", "render_json", "render_markdown", "write_new_file"]
