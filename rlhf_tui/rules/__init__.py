"""Diagnosis: the rule catalogue, its condition language, the incremental engine and run status.

Diagnosis reads runs through `RunView` (view.py) and never imports the UI. Typical use, one
Diagnostics per run::

    rules, errors = load_rules(user_dir)
    diagnostics = Diagnostics(rules)
    diagnostics.update(run, now)             # after each change to the run
    status = run_status(run, diagnostics.findings, now)
"""

from rlhf_tui.rules import severity
from rlhf_tui.rules.catalog import Rule, load_rules
from rlhf_tui.rules.engine import Diagnostics, Finding, Threshold
from rlhf_tui.rules.status import Diagnosis, Status, run_status
from rlhf_tui.rules.view import RunView

__all__ = [
    "Diagnosis",
    "Diagnostics",
    "Finding",
    "Rule",
    "RunView",
    "Status",
    "Threshold",
    "load_rules",
    "run_status",
    "severity",
]
