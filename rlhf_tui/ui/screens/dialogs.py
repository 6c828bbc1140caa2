"""Modal screens: help generated from the active bindings, the export path prompt, yes/no."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from rlhf_tui.look import Look, glyph
from rlhf_tui.rules import severity


def bindings_table(rows: list[tuple[str, str, str]]) -> Table:
    """rows: (key, what it does, where it works)."""
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold", expand=True)
    table.add_column("key", no_wrap=True, style="bold")
    table.add_column("action")
    table.add_column("where", style="dim", no_wrap=True)
    for key, description, where in rows:
        table.add_row(Text(key), Text(description), Text(where))
    return table


def legend(look: Look) -> Text:
    text = Text("Severity:")
    for level in severity.SEVERITIES:
        text.append(f"\n  {glyph(level)} {level:<8}", style=look.style(level))
        text.append(f" {severity.MEANINGS[level]}")
    text.append(f"\n  {glyph(severity.OK)} {'healthy':<8}", style=look.style(severity.OK))
    text.append(" no finding above low")
    text.append("\nSteps: ▶ running  ■ finished  ✖ crashed or killed  ‖ stalled  □ stopped   ● selected   ! notes")
    return text


class HelpScreen(ModalScreen[None]):
    """Every key that works where help was asked for, straight from the bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", key_display="esc")]

    def __init__(self, rows: list[tuple[str, str, str]], notes: list[str]) -> None:
        super().__init__(id="help")
        self.rows = rows
        self.notes = notes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Keys (esc closes)"
            yield Static(bindings_table(self.rows))
            yield Static(legend(self.app.look), id="help-legend")
            if self.notes:
                notes = Text("Problems found while loading:", style="bold yellow")
                for note in self.notes:
                    notes.append("\n  ")
                    notes.append(note)
                yield Static(notes, id="help-notes")

    def action_dismiss(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    """Where to write the report: a path prompt with a default, enter to write, esc to cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_name: str, default_path: str) -> None:
        super().__init__(id="export")
        self.run_name = run_name
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = "Export report"
            yield Label(Text(f"Markdown report of {self.run_name} to:"))
            yield Input(value=self.default_path, id="export-path")
            yield Label(Text("enter writes · esc cancels", style="dim"))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; no is the default."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(id="confirm")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as dialog:
            dialog.border_title = "Confirm"
            yield Label(Text(self.question))
            with Horizontal(id="confirm-buttons"):
                yield Button("No", id="no", variant="primary")
                yield Button("Yes, overwrite", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
