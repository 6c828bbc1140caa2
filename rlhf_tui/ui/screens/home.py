"""The home screen: the runs table, and the insights and crash panes of the run under the cursor."""

from __future__ import annotations


from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from rlhf_tui.look import glyph, progress_bar
from rlhf_tui.rules import severity
from rlhf_tui.ui.widgets.panes import CrashPane, InsightsPane
from rlhf_tui.ui.widgets.runs_table import SORT_KEYS, SORT_LABELS, RunsTable

NARROW_WIDTH = 120  # below this, the insights and crash panes share one place


class HomeScreen(Screen):
    BINDING_GROUP_TITLE = "home"
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Charts of the run (or of the selected runs, overlaid)"),
        Binding("space", "select", "Select", tooltip="Mark the run to overlay it with others"),
        Binding("i", "config", "Config", tooltip="The run's configuration (of selected runs: what differs)"),
        Binding("s", "sort", "Sort", tooltip="Sort by status, name, step, age, loss, reward, win rate, KL"),
        Binding("S", "reverse_sort", "Reverse sort", show=False),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Filter by name, trainer or status"),
        Binding("n", "next_problem", "Next problem", tooltip="Next run with a high or critical finding"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("tab", "cycle_pane(1)", "Next pane", show=False),
        Binding("shift+tab", "cycle_pane(-1)", "Previous pane", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="home")
        self.detail = "insights"  # which pane shows under the table when there is room for one
        self.shown_path: str | None = None
        self._summary = Text()

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield RunsTable(clock=self.app.clock, id="runs")
        with Horizontal(id="details"):
            yield InsightsPane(id="insights")
            yield CrashPane(id="crash")
        yield Input(placeholder="filter: words from name, trainer or status; a|b for either", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.table.focus()
        self.show_details()
        for state in ("loaded", "paused", "global_notes", "root_states", "history_progress"):
            self.watch(self.app, state, self.update_summary)

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def selected_run_path(self) -> str | None:
        return self.table.cursor_path

    # --- the summary line --------------------------------------------------------------------

    @on(RunsTable.Changed)
    def update_summary(self) -> None:
        """Runs, problems by severity, sort, filter, and the app's state, in one line.

        The user's own sort and filter keys call it at once too: waiting for the table's `Changed`
        message would show the new order a frame before the line that names it."""
        app = self.app
        table = self.table
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("rlhf-top", style="bold")
        total = len(table.snapshots)
        shown = len(table.order)
        text.append(f"  {total} run{'s' if total != 1 else ''}")
        if shown != total:
            text.append(f" ({shown} shown)")
        now = app.clock()
        for status in app.root_states:
            label = status.label(now)
            if status.state == "connected":
                text.append(f"  {status.host} ✓", style="dim")
            else:
                text.append(f"  {status.host}: {label}", style=app.look.style("critical" if status.state == "auth failed" else "high"))
        counts = {level: 0 for level in severity.SEVERITIES}
        for snapshot in table.snapshots.values():
            if snapshot.severity in counts:
                counts[snapshot.severity] += 1
        for level in severity.SEVERITIES:
            if counts[level]:
                text.append(f"  {counts[level]}{glyph(level)}", style=app.look.style(level))
        direction = "▲" if table.sort_reverse else "▼"
        text.append(f"  sort: {SORT_LABELS[table.sort_by]} {direction}", style="dim")
        if table.terms:
            text.append(f"  filter: {' | '.join(table.terms)}", style="bold")
        progress = app.history_progress
        if progress is not None and progress.runs:
            runs = f"{progress.runs} run{'s' if progress.runs != 1 else ''}"
            bar = progress_bar(progress.done_bytes, progress.total_bytes, 8)
            text.append(f"  loading {progress.fraction:.0%} {bar} ({runs} to go)", style="italic")
        elif not app.loaded:
            text.append("  loading…", style="italic")
        if app.paused:
            text.append("  ⏸ PAUSED", style="bold reverse")
        if app.global_notes:
            text.append(f"  ! {len(app.global_notes)} problem(s): press ?", style="yellow")
        if text != self._summary:
            self._summary = text
            self.query_one("#summary", Static).update(text, layout=False)

    # --- the panes under the table ------------------------------------------------------------

    @on(RunsTable.Highlighted)
    def _highlighted(self, event: RunsTable.Highlighted) -> None:
        if event.path != self.shown_path:
            if event.path is not None:
                self.app.loop.prefer([event.path])
            self.app.leave_run(self.shown_path, event.path)
            self.shown_path = event.path
            self.detail = "crash" if self._crash_relevant() else "insights"
        self.show_details()

    def show_details(self) -> None:
        snapshot = self.table.snapshots.get(self.table.cursor_path) if self.table.cursor_path else None
        self.query_one(InsightsPane).show(snapshot, self.app.new_findings(snapshot))
        self.query_one(CrashPane).show(snapshot)
        self._layout_details()

    def _crash_relevant(self) -> bool:
        path = self.table.cursor_path
        snapshot = self.table.snapshots.get(path) if path else None
        return snapshot is not None and (snapshot.crash is not None or snapshot.lifecycle in ("crashed", "killed"))

    def _layout_details(self) -> None:
        insights = self.query_one(InsightsPane)
        crash = self.query_one(CrashPane)
        relevant = self._crash_relevant()
        if self.has_class("-narrow"):
            show_crash = relevant and self.detail == "crash"
            show_insights = not show_crash
        else:
            show_crash, show_insights = relevant, True
        if crash.display != show_crash:
            crash.display = show_crash
        if insights.display != show_insights:
            insights.display = show_insights

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")
        self._layout_details()

    def action_cycle_pane(self, direction: int) -> None:
        panes = ["table", "insights"] + (["crash"] if self._crash_relevant() else [])
        focused = self.focused
        current = "crash" if isinstance(focused, CrashPane) else "insights" if isinstance(focused, InsightsPane) else "table"
        target = panes[(panes.index(current) + direction) % len(panes)]
        if target != "table":
            self.detail = target
            self._layout_details()
        widget = {"table": self.table, "insights": self.query_one(InsightsPane), "crash": self.query_one(CrashPane)}[target]
        widget.focus()

    # --- actions ----------------------------------------------------------------------------

    def _chosen(self) -> list[str]:
        """The selected runs, in table order, when there are two or more; else the run under the cursor."""
        table = self.table
        chosen = [path for path in table.order if path in table.selected]
        if len(chosen) < 2:
            chosen = [table.cursor_path] if table.cursor_path else []
        return chosen

    def action_open(self) -> None:
        chosen = self._chosen()
        if chosen:
            self.app.open_runs(chosen)

    def action_config(self) -> None:
        chosen = self._chosen()
        if chosen:
            self.app.open_config(chosen)

    def action_select(self) -> None:
        self.table.toggle_selected()
        count = len(self.table.selected)
        if count:
            self.notify(f"{count} run(s) selected: enter overlays them, i compares their configs", timeout=3)

    def action_sort(self) -> None:
        table = self.table
        table.set_sort(SORT_KEYS[(SORT_KEYS.index(table.sort_by) + 1) % len(SORT_KEYS)])
        self.update_summary()

    def action_reverse_sort(self) -> None:
        self.table.set_sort(self.table.sort_by, not self.table.sort_reverse)
        self.update_summary()

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if field.value or field.display:
            field.value = ""
            field.display = False
            self.table.set_filter("")
            self.table.focus()

    def action_next_problem(self) -> None:
        if self.table.next_problem() is None:
            self.notify("No run has a high or critical finding.", timeout=3)
        self.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self.update_summary()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        field = self.query_one("#filter", Input)
        field.display = bool(event.value)
        self.table.focus()
