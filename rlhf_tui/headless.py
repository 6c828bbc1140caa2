"""`rlhf-top --once` and `--json`: the run table without the TUI, from the same core."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rlhf_tui.session import Session
from rlhf_tui.core.text import one_line
from rlhf_tui.core.display import format_age, format_step, format_value
from rlhf_tui.look import Look
from rlhf_tui.rules import severity
from rlhf_tui.summary import RunRow, run_row


def rows(session: Session) -> list[RunRow]:
    now = session.clock()
    found = [run_row(run, session.diagnosis(run), now) for run in session.runs()]
    return sorted(found, key=lambda row: (severity.rank(row.severity), row.name))


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
    look = Look(monochrome=color_system == "none")
    for row in rows(session):
        style = look.style(row.severity)
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
    now = session.clock()
    for status in session.monitor.root_status():
        requests, transferred = status.per_minute()
        console.print(Text(
            f"root {one_line(status.root)}: {status.label(now)} ({status.requests} requests, "
            f"{format_bytes(status.bytes)} read; {requests:.0f} requests/min)",
            style="dim" if status.state == "connected" else look.style("high"),
        ))
    for note in session.notes:
        console.print(Text(f"note: {one_line(note, 500)}", style="dim"))


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def print_json(session: Session) -> None:
    now = session.clock()
    document = {
        "roots": session.monitor.roots,
        "connections": [status.as_json(now) for status in session.monitor.root_status()],
        "runs": [row.as_json() for row in rows(session)],
        "notes": session.notes,
    }
    json.dump(document, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
