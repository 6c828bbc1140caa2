"""Diagnosis: the rule catalogue, its condition language, the incremental engine and run status.

No Textual here. Typical use, one Diagnostics per run::

    rules, errors = load_rules(user_dir)
    diagnostics = Diagnostics(rules)
    if diagnostics.update(run):          # after each change to the run
        redraw(diagnostics.findings)
    status = run_status(run, diagnostics.findings)
"""

from .catalog import SEVERITIES, Rule, load_rules
from .engine import Diagnostics, Finding, Threshold
from .status import Status, run_status

__all__ = ["SEVERITIES", "Diagnostics", "Finding", "Rule", "Status", "Threshold", "load_rules", "run_status"]
