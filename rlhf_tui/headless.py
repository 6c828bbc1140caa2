"""`rlhf-top --once` and `--json`: the run table without the TUI, from the same core."""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rlhf_tui.core.session import Session
from rlhf_tui.core.text import one_line
from rlhf_tui.core.summary import SEVERITY_ORDER, format_age, format_step, format_value, run_row

SEVERITY_STYLES = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "ok": "green"}


def rows(session: Session):
    now = time.time()
    found = [run_row(run, now) for run in session.runs()]
    return sorted(found, key=lambda row: (SEVERITY_ORDER.get(row.severity, 9), row.name))


def print_table(session: Session, color_system: str = "auto") -> None:
    console = Console(
        color_system=None if color_system == "none" else color_system,
        highlight=False,
        soft_wrap=False,
    )
    if not console.is_terminal:
        console.width = max(console.width, 200)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("run", "trainer", "status", "step", "loss", "reward", "win rate", "KL", "age"):
        table.add_column(column, no_wrap=True)
    table.add_column("top finding", no_wrap=True, overflow="ellipsis", max_width=72)
    for row in rows(session):
        style = SEVERITY_STYLES.get(row.severity, "")
        detail = row.top_finding or row.crash or ""
        table.add_row(
            Text(one_line(row.name)),
            Text(row.trainer),
            Text(row.status, style=style),
            Text(format_step(row.step, row.max_steps)),
            *(Text(format_value(row.values[role])) for role in ("loss", "reward", "win_rate", "kl")),
            Text(format_age(row.age)),
            Text(one_line(detail), style=style),
        )
    if not table.rows:
        console.print(Text(f"no runs found under {', '.join(session.monitor.roots)}"))
    else:
        console.print(table)
    for note in session.notes:
        console.print(Text(f"note: {one_line(note, 500)}", style="dim"))


def print_json(session: Session) -> None:
    document = {
        "roots": session.monitor.roots,
        "runs": [row.as_json() for row in rows(session)],
        "notes": session.notes,
    }
    json.dump(document, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
