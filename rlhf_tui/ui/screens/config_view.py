"""The config view: one run's configuration, or several runs' side by side (by default only what differs)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from rlhf_tui.ui.config_data import ConfigViewData
from rlhf_tui.ui.messages import ConfigViewReady
from rlhf_tui.ui.pacing import Pacer

REDRAW_SECONDS = 2.0  # a configuration rarely changes; a live run re-asks at most this often
MISSING = "—"  # a run that does not have the key


class ConfigScreen(Screen):
    BINDING_GROUP_TITLE = "config view"
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("d", "toggle_differences", "Differences/all", tooltip="Only the keys that differ, or every key"),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Show only keys containing these words"),
    ]

    def __init__(self, paths: list[str]) -> None:
        super().__init__(id="config-view")
        self.paths = paths
        self.only_differences = len(paths) > 1
        self.data: ConfigViewData | None = None
        self.terms: list[str] = []
        self.drawn = False  # the latest answer is on screen
        self._pacer = Pacer(self, REDRAW_SECONDS, self.ask)

    def compose(self) -> ComposeResult:
        yield Static(id="config-title")
        yield DataTable(id="config-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter keys: words that must all appear in the key", id="config-filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#config-filter", Input).display = False
        self.query_one(DataTable).focus()
        self.ask()

    def selected_run_path(self) -> str | None:
        return self.paths[0]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_differences":
            return len(self.paths) > 1
        return True

    # --- data -------------------------------------------------------------------------------

    def ask(self) -> None:
        self._pacer.ran()
        self.drawn = False
        self.app.prepare_config_view(self, tuple(self.paths), self.only_differences)

    def runs_changed(self, paths: set[str]) -> None:
        """Some runs changed: ask again if ours did, at most once per REDRAW_SECONDS."""
        if paths.intersection(self.paths):
            self._pacer.request()

    @on(ConfigViewReady)
    def _ready(self, message: ConfigViewReady) -> None:
        data = message.data
        if data.only_differences != (self.only_differences and len(self.paths) > 1):
            return  # an answer to the question before the last toggle
        if data != self.data:
            self.data = data
            self._draw()
        self.drawn = True

    def _draw(self) -> None:
        data = self.data
        if data is None:
            return
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        several = len(data.names) > 1
        table.add_column(Text("key", style="bold"), key="key")
        for index, name in enumerate(data.names):
            table.add_column(Text(name, style="bold"), key=f"run-{index}")
        table.fixed_columns = 1
        shown = [row for row in data.rows if all(term in row.key.lower() for term in self.terms)]
        for row in shown:
            key = Text(row.key, style="bold" if several and row.differs and not data.only_differences else "")
            cells = [Text(value) if value is not None else Text(MISSING, style="dim") for value in row.values]
            table.add_row(key, *cells)
        if shown:
            table.move_cursor(row=min(cursor, len(shown) - 1))
        self._update_title(len(shown))

    def _update_title(self, shown: int) -> None:
        data = self.data
        if data is None:
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        if len(data.names) == 1:
            text.append(f"Config of {data.names[0]}", style="bold")
            text.append(f"  {data.keys} keys")
        else:
            text.append(f"Config of {len(data.names)} runs", style="bold")
            text.append(f"  {data.differing} of {data.keys} keys differ")
            if data.partial:
                text.append(f" ({data.partial} only in some runs, listed last)")
            text.append("  showing differences" if data.only_differences else "  showing every key", style="dim")
        if self.terms:
            text.append(f"  filter: {' '.join(self.terms)} ({shown} shown)", style="bold")
        if data.without_config:
            text.append(f"  no configuration recorded: {', '.join(data.without_config)}", style="yellow")
        self.query_one("#config-title", Static).update(text)

    # --- actions ----------------------------------------------------------------------------

    def action_back(self) -> None:
        field = self.query_one("#config-filter", Input)
        if field.has_focus:
            field.value = ""
            field.display = False
            self.query_one(DataTable).focus()
            return
        self.dismiss()

    def action_toggle_differences(self) -> None:
        self.only_differences = not self.only_differences
        self.ask()

    def action_filter(self) -> None:
        field = self.query_one("#config-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#config-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.terms = event.value.lower().split()
        self._draw()

    @on(Input.Submitted, "#config-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#config-filter", Input).display = bool(event.value)
        self.query_one(DataTable).focus()
