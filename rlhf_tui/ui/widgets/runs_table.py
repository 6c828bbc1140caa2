"""The runs table: one line per run, redrawn only where a run changed.

A Line API widget rather than a DataTable: rows are rendered from snapshots on demand and cached per
run version, sorting and filtering only reorder a list of paths, the cursor follows a run (not a row
number), and columns drop out by priority when the terminal is narrow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from rlhf_tui.core.display import format_age, format_value
from rlhf_tui.look import LIFECYCLE_GLYPH, LOADING_GLYPH, glyph, progress_bar, sparkline
from rlhf_tui.rules import severity
from rlhf_tui.ui.snapshot import RunSnapshot

SORT_KEYS = ("status", "name", "step", "age", "loss", "reward", "win_rate", "kl")
SORT_LABELS = {
    "status": "status",
    "name": "name",
    "step": "step",
    "age": "age",
    "loss": "loss",
    "reward": "reward",
    "win_rate": "win rate",
    "kl": "KL",
}
LIFECYCLE_RANK = {"crashed": 0, "killed": 1, "stalled": 2, "stopped": 3, "running": 4, "finished": 5, "gone": 6}
NAME_MIN = 12
NAME_COMFORT = 24
NAME_MAX = 48
CORE_DROP = 5  # columns up to this `drop` may squeeze the name down to NAME_MIN


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # 0: the name, which takes the space left over
    drop: int  # when the terminal is too narrow, the highest `drop` goes first; 0 never goes
    sort: str | None = None  # the sort key this column shows
    right: bool = False


COLUMNS = (
    Column("status", "status", 16, 0, "status"),
    Column("name", "run", 0, 0, "name"),
    Column("trainer", "trainer", 7, 6),
    Column("step", "step", 11, 1, "step", right=True),
    Column("progress", "", 6, 7),
    Column("loss", "loss", 9, 2, "loss", right=True),
    Column("loss~", "", 10, 3),
    Column("reward", "reward", 9, 4, "reward", right=True),
    Column("reward~", "", 10, 8),
    Column("win_rate", "win rate", 9, 5, "win_rate", right=True),
    Column("win_rate~", "", 10, 10),
    Column("kl", "KL", 9, 5, "kl", right=True),
    Column("kl~", "", 10, 9),
    Column("findings", "issues", 7, 2),
    Column("age", "age", 6, 1, "age", right=True),
)
MARK_WIDTH = 2
BOLD = Style(bold=True)
DIM = Style(dim=True)
CYAN = Style(color="cyan")
YELLOW = Style(color="yellow")
STATUS_EXTRA = 4  # room permitting, "◆ Partially unstable" is not cut


def layout(width: int) -> list[tuple[Column, int]]:
    """The columns that fit in `width` cells, with their widths (the name gets what is left).

    Columns are added in `drop` order while they fit; the optional ones (drop > CORE_DROP) only
    while the name keeps NAME_COMFORT cells, so names are not cut for the sake of extras.
    """

    def needed(columns: list[Column], name: int) -> int:
        return MARK_WIDTH + sum(c.width or name for c in columns) + len(columns) - 1

    chosen = [c for c in COLUMNS if not c.drop]
    for column in sorted((c for c in COLUMNS if c.drop), key=lambda c: c.drop):
        name = NAME_MIN if column.drop <= CORE_DROP else NAME_COMFORT
        if needed(chosen + [column], name) <= width:
            chosen.append(column)
    chosen.sort(key=COLUMNS.index)
    spare = max(0, width - needed(chosen, NAME_MIN))
    status_extra = STATUS_EXTRA if NAME_MIN + spare - STATUS_EXTRA >= NAME_COMFORT else 0
    name_width = min(NAME_MAX, NAME_MIN + spare - status_extra)
    return [(c, c.width + (status_extra if c.key == "status" else 0) or name_width) for c in chosen]


def sort_key(key: str) -> Callable[[RunSnapshot], tuple]:
    if key == "status":
        return lambda s: (
            severity.rank(s.severity),
            LIFECYCLE_RANK.get(s.lifecycle, 9),
            s.name.lower(),
            s.path,
        )
    if key == "name":
        return lambda s: (s.name.lower(), s.path)
    if key == "step":
        return lambda s: (s.step is None, -(s.step or 0), s.name.lower(), s.path)
    if key == "age":
        return lambda s: (s.last_data_time is None, -(s.last_data_time or 0.0), s.name.lower(), s.path)
    return lambda s: (s.values.get(key) is None, s.values.get(key) or 0.0, s.name.lower(), s.path)


def parse_filter(text: str) -> list[str]:
    """`dpo|crash` -> ["dpo", "crash"]: a run matches when any term does."""
    return [term.strip().lower() for term in text.split("|") if term.strip()]


def matches(snapshot: RunSnapshot, terms: list[str]) -> bool:
    if not terms:
        return True
    haystack = f"{snapshot.name}\n{snapshot.trainer}\n{snapshot.status}\n{snapshot.lifecycle}".lower()
    return any(term in haystack for term in terms)


class RunsTable(Widget, can_focus=True):
    """All runs, one per line, with a header line; the cursor stays on its run through any reorder."""
    BINDING_GROUP_TITLE = "runs table"

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first", "First run", show=False),
        Binding("end,G", "last", "Last run", show=False),
    ]
    COMPONENT_CLASSES = {
        "runs-table--header",
        "runs-table--cursor",
        "runs-table--problem",
        "runs-table--selected",
        "runs-table--dim",
    }
    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """

    class Highlighted(Message):
        """The cursor moved to another run, or its run changed (path None: no run to show)."""

        def __init__(self, path: str | None) -> None:
            super().__init__()
            self.path = path

    class Changed(Message):
        """The runs, their order or the filter changed: what a summary of the table says may differ."""

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.snapshots: dict[str, RunSnapshot] = {}
        self.order: list[str] = []
        self.selected: set[str] = set()
        self.sort_by = "status"
        self.sort_reverse = False
        self.terms: list[str] = []
        self.cursor_path: str | None = None
        self.follow_top = True  # until the user moves it, the cursor stays on the first (worst) row
        self.top = 0
        self._sort_values: dict[str, tuple] = {}
        self._position: dict[str, int] = {}  # path -> index in `order`
        self._row_cache: dict[str, tuple[tuple, Strip]] = {}
        self._ages: dict[str, str] = {}
        self._row_styles: dict[str, Style] | None = None
        self._column_layout: tuple[int, list[tuple[Column, int]]] = (-1, [])

    # --- data in --------------------------------------------------------------------------

    def update_runs(self, snapshots: Iterable[RunSnapshot]) -> None:
        """Take new snapshots; reorder only when a sort position or the filter result changed."""
        key = sort_key(self.sort_by)
        reorder = False
        changed = []
        for snapshot in snapshots:
            path = snapshot.path
            self.snapshots[path] = snapshot
            value = key(snapshot)
            visible = matches(snapshot, self.terms)
            if visible != (path in self._sort_values) or (visible and self._sort_values.get(path) != value):
                reorder = True
            changed.append(path)
        if reorder:
            self._reorder()
        else:
            for path in changed:
                self.refresh_row(path)
        if self.cursor_path is None and self.order:
            self._move_to(0)
        elif self.cursor_path in changed:
            self.post_message(self.Highlighted(self.cursor_path))
        self.post_message(self.Changed())

    def set_sort(self, key: str, reverse: bool = False) -> None:
        self.follow_top = False  # the run under the cursor stays under it, wherever it moves
        self.sort_by = key
        self.sort_reverse = reverse
        self._reorder()
        self.post_message(self.Changed())

    def set_filter(self, text: str) -> None:
        self.terms = parse_filter(text)
        self._reorder()
        self.post_message(self.Changed())

    def toggle_selected(self) -> None:
        self.follow_top = False
        path = self.cursor_path
        if path is None:
            return
        self.selected.symmetric_difference_update({path})
        self.refresh_row(path)

    def refresh_ages(self) -> None:
        """Ages move with the clock: redraw the visible rows whose age text changed."""
        now = self.clock()
        for path in self.order[self.top : self.top + self._body_height()]:
            age = format_age(self.snapshots[path].age(now))
            if self._ages.get(path) != age:
                self.refresh_row(path)

    # --- cursor -----------------------------------------------------------------------------

    @property
    def cursor_index(self) -> int | None:
        return self._position.get(self.cursor_path) if self.cursor_path is not None else None

    def move_to_path(self, path: str) -> bool:
        if path not in self._position:
            return False
        self.follow_top = False
        self._move_to(self._position[path])
        return True

    def next_problem(self) -> str | None:
        """Move to the next run (after the cursor, wrapping) with a high-or-worse problem."""
        if not self.order:
            return None
        self.follow_top = False
        start = self.cursor_index
        start = -1 if start is None else start
        for offset in range(1, len(self.order) + 1):
            index = (start + offset) % len(self.order)
            if self.snapshots[self.order[index]].has_problem:
                self._move_to(index)
                return self.order[index]
        return None

    def action_cursor_up(self) -> None:
        self._step(-1)

    def action_cursor_down(self) -> None:
        self._step(1)

    def action_page_up(self) -> None:
        self._step(-max(1, self._body_height() - 1))

    def action_page_down(self) -> None:
        self._step(max(1, self._body_height() - 1))

    def action_first(self) -> None:
        self.follow_top = False
        if self.order:
            self._move_to(0)

    def action_last(self) -> None:
        self.follow_top = False
        if self.order:
            self._move_to(len(self.order) - 1)

    def _step(self, delta: int) -> None:
        self.follow_top = False
        if not self.order:
            return
        index = self.cursor_index
        index = 0 if index is None else max(0, min(len(self.order) - 1, index + delta))
        self._move_to(index)

    def _move_to(self, index: int) -> None:
        old = self.cursor_path
        self.cursor_path = self.order[index]
        if not self._scroll_to(index):
            if old is not None:
                self.refresh_row(old)
            self.refresh_row(self.cursor_path)
        if old != self.cursor_path:
            self.post_message(self.Highlighted(self.cursor_path))

    def _scroll_to(self, index: int) -> bool:
        """Make row `index` visible; True when that scrolled (everything redraws)."""
        height = self._body_height()
        top = self.top
        if index < top:
            top = index
        elif index >= top + height:
            top = index - height + 1
        top = max(0, min(top, max(0, len(self.order) - height)))
        if top != self.top:
            self.top = top
            self.refresh()
            return True
        return False

    def _body_height(self) -> int:
        return max(1, self.size.height - 1)

    # --- mouse ------------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        index = self.top + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.order):
            self.follow_top = False
            self._move_to(index)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._scroll_by(3)
        event.stop()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._scroll_by(-3)
        event.stop()

    def _scroll_by(self, delta: int) -> None:
        top = max(0, min(self.top + delta, max(0, len(self.order) - self._body_height())))
        if top != self.top:
            self.top = top
            self.refresh()

    # --- ordering ---------------------------------------------------------------------------

    def _reorder(self) -> None:
        key = sort_key(self.sort_by)
        self._sort_values = {
            path: key(snapshot) for path, snapshot in self.snapshots.items() if matches(snapshot, self.terms)
        }
        old_index = self.cursor_index
        self.order = sorted(self._sort_values, key=self._sort_values.__getitem__, reverse=self.sort_reverse)
        self._position = {path: index for index, path in enumerate(self.order)}
        self.refresh()
        if not self.order:
            if self.cursor_path is not None:
                self.cursor_path = None
                self.post_message(self.Highlighted(None))
            self.top = 0
            return
        if self.follow_top and self.order[0] != self.cursor_path:
            self._move_to(0)
        elif self.cursor_path in self._position:
            self._scroll_to(self._position[self.cursor_path])
        else:
            self._move_to(min(old_index or 0, len(self.order) - 1))

    def refresh_row(self, path: str) -> None:
        """Redraw the line of one run, if it is on screen."""
        index = self._position.get(path)
        if index is None:
            return
        y = index - self.top + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def on_resize(self, event: events.Resize) -> None:
        index = self.cursor_index
        if index is not None:
            self._scroll_to(index)

    def on_focus(self) -> None:
        if self.cursor_path is not None:
            self.refresh_row(self.cursor_path)

    def on_blur(self) -> None:
        if self.cursor_path is not None:
            self.refresh_row(self.cursor_path)

    # --- drawing ----------------------------------------------------------------------------
    # Rows are built from plain (text, style) pieces straight into segments: a row is redrawn for
    # every change of its run, so this is the hot path of a busy screen.

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._row_cache.clear()
        self._row_styles = None

    def _line_styles(self) -> dict[str, Style]:
        if self._row_styles is None:
            self._row_styles = {
                name: self.get_component_rich_style(f"runs-table--{name}")
                for name in ("header", "cursor", "problem", "selected")
            }
            self._row_styles["base"] = self.rich_style
        return self._row_styles

    def _layout(self, width: int) -> list[tuple[Column, int]]:
        if self._column_layout[0] != width:
            self._column_layout = (width, layout(width))
        return self._column_layout[1]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        styles = self._line_styles()
        if y == 0:
            return self._header(width, styles["base"] + styles["header"])
        index = self.top + y - 1
        if index >= len(self.order):
            return Strip.blank(width, styles["base"])
        return self._row(self.order[index], width, styles)

    def _header(self, width: int, style: Style) -> Strip:
        titles = []
        for column, column_width in self._layout(width):
            title = column.title
            if column.sort is not None and column.sort == self.sort_by:
                title += " ▲" if self.sort_reverse else " ▼"
            titles.append(title.rjust(column_width)[-column_width:] if column.right else title.ljust(column_width)[:column_width])
        return Strip([Segment(" " * MARK_WIDTH + " ".join(titles), style)]).adjust_cell_length(width, style)

    def _row(self, path: str, width: int, styles: dict[str, Style]) -> Strip:
        snapshot = self.snapshots[path]
        age = format_age(snapshot.age(self.clock()))
        self._ages[path] = age
        is_cursor = path == self.cursor_path
        selected = path in self.selected
        unseen = bool(self.app.new_findings(snapshot))
        cache_key = (id(snapshot), width, is_cursor, self.has_focus, selected, unseen, age)
        cached = self._row_cache.get(path)
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        row_style = styles["base"]
        if snapshot.severity == "critical":
            row_style = row_style + styles["problem"]
        if is_cursor:
            row_style = row_style + styles["cursor"] + (Style() if self.has_focus else Style(dim=True))
        mark = "● " if selected else "  "
        segments = [Segment(mark, row_style + styles["selected"])]
        for number, (column, column_width) in enumerate(self._layout(width)):
            if number:
                segments.append(Segment(" ", row_style))
            pieces = self._cell(snapshot, column.key, age)
            if column.key == "findings" and unseen:
                pieces.append(("*", BOLD))
            segments.extend(_fit(pieces, column_width, column.right, row_style))
        strip = Strip(segments).adjust_cell_length(width, row_style)
        self._row_cache[path] = (cache_key, strip)
        return strip

    def _cell(self, snapshot: RunSnapshot, key: str, age: str) -> list[tuple[str, Style | None]]:
        if key == "status":
            if snapshot.loading and snapshot.severity == severity.OK:
                return [(f"{LOADING_GLYPH} {snapshot.status}", DIM)]
            return [(f"{glyph(snapshot.severity)} {snapshot.status}", Style.parse(self.app.look.style(snapshot.severity)))]
        if key == "name":
            return [(snapshot.name, None)] + ([(" !", YELLOW)] if snapshot.notes else [])
        if key == "trainer":
            return [(snapshot.trainer, None)]
        if key == "step":
            mark = LIFECYCLE_GLYPH.get(snapshot.lifecycle, " ")
            if snapshot.step is None:
                return [(f"{mark} -", None)]
            total = f"/{snapshot.max_steps}" if snapshot.max_steps else ""
            return [(f"{mark} {snapshot.step}{total}", None)]
        if key == "progress":
            return [(progress_bar(snapshot.step, snapshot.max_steps, 5), DIM)]
        if key == "findings":
            pieces: list[tuple[str, Style | None]] = []
            for level in severity.SEVERITIES:
                count = snapshot.counts.get(level, 0)
                if count:
                    pieces.append((f"{' ' if pieces else ''}{count}{glyph(level)}", Style.parse(self.app.look.style(level))))
            return pieces
        if key == "age":
            return [(age, None)]
        if key.endswith("~"):
            return [(sparkline(snapshot.sparks.get(key[:-1], ())), CYAN)]
        return [(format_value(snapshot.values.get(key)), None)]


def _fit(pieces: list[tuple[str, Style | None]], width: int, right: bool, row_style: Style) -> list[Segment]:
    """Pieces cut (with an ellipsis) or padded to exactly `width` cells."""
    total = sum(cell_len(text) for text, _ in pieces)
    if total > width:
        kept: list[tuple[str, Style | None]] = []
        room = width - 1
        for text, piece_style in pieces:
            length = cell_len(text)
            if length >= room:
                kept.append((set_cell_size(text, room), piece_style))
                break
            kept.append((text, piece_style))
            room -= length
        pieces = kept + [("…", None)]
        total = width
    segments = [Segment(text, row_style + piece_style if piece_style else row_style) for text, piece_style in pieces]
    if total < width:
        padding = Segment(" " * (width - total), row_style)
        if right:
            segments.insert(0, padding)
        else:
            segments.append(padding)
    return segments
