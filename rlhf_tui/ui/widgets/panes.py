"""The insights pane and the crash pane of the selected run."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Group
from rich.padding import Padding
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import ScrollableContainer, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from rlhf_tui.core.display import format_step, format_value
from rlhf_tui.look import Look, glyph
from rlhf_tui.rules import severity
from rlhf_tui.ui.snapshot import FindingView, RunSnapshot


def insights_renderable(snapshot: RunSnapshot | None, new: set[str], look: Look) -> Group:
    """Findings most severe first (glyph, where, message, action, reference), then reader notes."""
    if snapshot is None:
        return Group(Text("No run selected.", style="dim"))
    parts: list[Text | Padding] = []
    if not snapshot.findings:
        if snapshot.loading:
            parts.append(Text("… Reading the run's history: its findings follow once all of it is read.", style="dim"))
        elif snapshot.step is None:
            parts.append(Text("No steps logged yet.", style="dim"))
        else:
            parts.append(Text("✓ No findings.", style="green"))
    for number, finding in enumerate(snapshot.findings):
        if number:
            parts.append(Text())
        parts.append(_finding_title(finding, finding.rule_id in new, look))
        parts.append(Padding(_finding_body(finding), (0, 0, 0, 2)))
    if snapshot.notes:
        parts.append(Text())
        parts.append(Text(f"! {len(snapshot.notes)} note(s) about this run's files", style="bold yellow"))
        notes = Text("\n".join(snapshot.notes[-20:]), style="yellow")
        parts.append(Padding(notes, (0, 0, 0, 2)))
    return Group(*parts)


def _finding_title(finding: FindingView, new: bool, look: Look) -> Text:
    text = Text()
    label = severity.LABELS.get(finding.severity, finding.severity.upper())
    text.append(f"{glyph(finding.severity)} {label:<8} ", style=look.style(finding.severity) if finding.active else "dim")
    text.append(finding.title, style="bold" if finding.active else "dim")
    if new:
        text.append("  NEW", style="bold reverse")
    return text


def _finding_body(finding: FindingView) -> Text:
    details = [finding.where]
    if finding.value is not None:
        measured = f"value {format_value(finding.value)}"
        if finding.threshold is not None:
            measured += f" vs threshold {format_value(finding.threshold)}"
        details.append(measured)
    text = Text(" · ".join(details), style="dim")
    if finding.message:
        text.append("\n")
        text.append(finding.message)
    if finding.action:
        text.append("\n→ ", style="bold")
        text.append(finding.action)
    if finding.reference:
        text.append("\nRef: ", style="dim")
        text.append(finding.reference, style="dim italic")
    return text


class InsightsPane(VerticalScroll, can_focus=True):
    """Scrollable list of the selected run's findings."""

    DEFAULT_CSS = """
    InsightsPane > Static { width: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="insights-body")

    def show(self, snapshot: RunSnapshot | None, new: set[str]) -> None:
        """Redraw only when what the pane says changed (not on every new step of the run)."""
        key = (snapshot.name, snapshot.findings, snapshot.notes, snapshot.step is None, snapshot.loading, frozenset(new)) if snapshot else None
        if key == self._shown and self._shown is not None:
            return
        self._shown = key
        self.border_title = Content("Insights" if snapshot is None else f"Insights · {snapshot.name}")
        self.query_one("#insights-body", Static).update(insights_renderable(snapshot, new, self.app.look))


def crash_header(snapshot: RunSnapshot, look: Look) -> Text:
    crash = snapshot.crash
    text = Text()
    if crash is None:
        if snapshot.lifecycle in ("killed", "stalled"):
            text.append(f"{glyph('critical')} {snapshot.status}", style=look.style("critical"))
            text.append(f"\nLast step: {format_step(snapshot.step, snapshot.max_steps)}")
        else:
            text.append("No crash.", style="dim")
        return text
    text.append(f"{glyph('critical')} {crash.label}", style=look.style("critical"))
    text.append(f"  ({crash.reason})")
    # The run's own last step: a crash seen in a console log may count steps of its own.
    last = snapshot.step if snapshot.step is not None else crash.last_step
    text.append(f"\nLast good step: {'unknown' if last is None else last}")
    if crash.time is not None:
        moment = datetime.fromtimestamp(crash.time, tz=timezone.utc)
        text.append(f" · {moment.strftime('%Y-%m-%d %H:%M:%S')} UTC", style="dim")
    if crash.source:
        text.append(f" · from {crash.source}", style="dim")
    if crash.exception:
        text.append("\n")
        text.append(crash.exception, style="bold")
    return text


def highlight_traceback(traceback: str) -> Text:
    """Python-traceback colours on the text as data; no background, so it sits on the pane's."""
    text = Syntax(traceback, "pytb", theme="ansi_dark").highlight(traceback)
    text.style = ""
    text.no_wrap = True
    text.rstrip()
    return text


class CrashPane(ScrollableContainer, can_focus=True):
    """Exit reason, crash class, last good step and the traceback (scrolls both ways)."""

    DEFAULT_CSS = """
    CrashPane > #crash-traceback { width: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.traceback = ""
        self._shown: tuple[bool, str] | None = None
        self._header_key: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="crash-header")
        yield Static(id="crash-traceback")

    def show(self, snapshot: RunSnapshot | None) -> None:
        crash = snapshot.crash if snapshot is not None else None
        # Not the step: it moves on every new step of a live run, and for a dead run it has stopped.
        header_key = None if snapshot is None else (snapshot.name, crash, snapshot.lifecycle, snapshot.status)
        if header_key != self._header_key or header_key is None:
            self._header_key = header_key
            self.border_title = Content("Crash" if snapshot is None else f"Crash · {snapshot.name}")
            self.query_one("#crash-header", Static).update(
                crash_header(snapshot, self.app.look) if snapshot is not None else Text("No run selected.", style="dim")
            )
        traceback = crash.traceback if crash is not None and crash.traceback else ""
        self.traceback = traceback
        if self._shown == (crash is not None, traceback):
            return
        self._shown = (crash is not None, traceback)
        body = self.query_one("#crash-traceback", Static)
        if traceback:
            body.update(highlight_traceback(traceback))
        else:
            body.update(Text("No traceback was logged." if crash is not None else "", style="dim"))
