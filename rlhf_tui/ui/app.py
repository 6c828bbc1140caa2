"""The Textual application: screens, app-wide keys and state, and the hand-over from other threads.

Three kinds of thread feed the screen, and none of them touches a widget: the reader (live.py) owns
the session and hands over `RunSnapshot`s; workers prepare the run view's charts (run_data.py) and
write exported reports, and post their results as messages (messages.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import ActiveBinding, Binding
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen

from rlhf_tui.core.remote import RootStatus
from rlhf_tui.events import Event
from rlhf_tui.look import Look
from rlhf_tui.notify import Notifier, compose
from rlhf_tui.notify import log as notify_log
from rlhf_tui.report import build_report, is_inside, render_markdown, write_new_file
from rlhf_tui.ui.config_data import prepare_config
from rlhf_tui.ui.desktop import notification
from rlhf_tui.ui.live import Batch, LiveLoop, Loading, LoopSettings
from rlhf_tui.ui.messages import BatchWaiting, ConfigViewReady, ExportFinished, RunViewReady
from rlhf_tui.ui.run_data import RunViewRequest, prepare
from rlhf_tui.ui.screens.config_view import ConfigScreen
from rlhf_tui.ui.screens.dialogs import ConfirmScreen, ExportScreen, HelpScreen
from rlhf_tui.ui.screens.home import HomeScreen
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.snapshot import RunSnapshot

AGE_SECONDS = 1.0


def default_report_path(run_name: str, run_path: str, cwd: str, home: str) -> str:
    """`./<run>-report.md` in the working directory, or in the home directory when the working
    directory is inside the run (a report never goes into a run directory)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("._") or "run"
    filename = f"{safe}-report.md"
    if not is_inside(cwd, run_path):
        return f".{os.sep}{filename}"
    return os.path.join(home, filename)


FAILED_NAMED = 5


def failed_runs_message(failed: list[RunSnapshot]) -> str:
    """What the table marks ✖ (crashed, killed, NaN), counted and named."""
    named = ", ".join(f"{s.name} ({s.status})" for s in failed[:FAILED_NAMED])
    more = f" and {len(failed) - FAILED_NAMED} more" if len(failed) > FAILED_NAMED else ""
    runs = "run" if len(failed) == 1 else "runs"
    return f"{len(failed)} failed {runs}: {named}{more}. n jumps to each problem."


class DeliveryProblems(logging.Handler):
    """`--notify` deliveries that fail, as toasts (the notifier logs them from its own thread)."""

    def __init__(self, app: App) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        severity: SeverityLevel = "error" if record.levelno >= logging.ERROR else "warning"
        self.app.notify(record.getMessage(), title="Notification", severity=severity, timeout=10, markup=False)


class RlhfTop(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "rlhf-top"
    BINDING_GROUP_TITLE = "everywhere"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("p", "pause", "Pause", tooltip="Stop (or resume) reading new data"),
        Binding("r", "refresh", "Refresh", tooltip="Re-read every file and look for new runs now"),
        Binding("e", "export", "Export", tooltip="Write the Markdown report of the run"),
        Binding("c", "copy", "Copy", tooltip="Copy the traceback (or the run's path) to the clipboard"),
    ]

    loaded: reactive[bool] = reactive(False)
    """The cold start is over: every run found at start has been read once."""
    paused: reactive[bool] = reactive(False)
    """No new data is read until the user resumes (`p`)."""
    global_notes: reactive[tuple[str, ...]] = reactive(())
    """Problems that belong to no run: unreadable roots, bad rule files, file watching unavailable."""
    root_states: reactive[tuple[RootStatus, ...]] = reactive(())
    """Where each remote root stands: connected, retrying in N s, auth failed."""
    history_progress: reactive[Loading | None] = reactive(None)
    """How far reading the runs' histories is (big logs show their tail until then)."""

    def __init__(self, settings: LoopSettings, quiet: bool = False, notifier: Notifier | None = None) -> None:
        """quiet: no bell and no desktop notification on events; notifier: where else events go (--notify)."""
        super().__init__()
        self.look = Look(monochrome=self.no_color)
        self.settings = settings
        self.quiet = quiet
        self.notifier = notifier
        self._delivery_problems = DeliveryProblems(self)
        self.clock = settings.clock
        self.loop = LiveLoop(settings, notify=lambda: self.post_message(BatchWaiting()))
        self.snapshots: dict[str, RunSnapshot] = {}
        self.seen: dict[str, dict[str, int]] = {}  # run path -> {rule id: times fired} the user saw

    def get_default_screen(self) -> Screen:
        self.home = HomeScreen()
        return self.home

    def on_mount(self) -> None:
        if self.notifier is not None:
            notify_log.addHandler(self._delivery_problems)
        self._read()
        self.set_interval(AGE_SECONDS, self._refresh_ages)
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hang_up)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # no SIGHUP here (Windows, or not the main thread)

    def on_unmount(self) -> None:
        notify_log.removeHandler(self._delivery_problems)
        self.loop.stop()
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def _hang_up(self) -> None:
        """The terminal went away (SSH dropped): stop reading and leave quietly."""
        self.loop.stop()
        self.exit(0)

    @work(thread=True, exit_on_error=False, name="reader")
    def _read(self) -> None:
        self.loop.run()

    # --- the hand-over ----------------------------------------------------------------------

    def on_batch_waiting(self, message: BatchWaiting) -> None:
        self.apply(self.loop.take())

    def apply(self, batch: Batch) -> None:
        for error in batch.errors:
            self.notify(error, title="rlhf-top", severity="error", timeout=15, markup=False)
        if batch.roots is not None:
            self.root_states = tuple(batch.roots)
        if batch.loading is not None:
            self.history_progress = batch.loading
        if batch.notes is not None:
            self.global_notes = tuple(batch.notes)
            if batch.notes and self.loaded:
                self.notify("\n".join(batch.notes[:5]), title="Problems", severity="warning", timeout=10, markup=False)
        failed = []
        for path, snapshot in batch.snapshots.items():
            old = self.snapshots.get(path)
            if not self.loaded:
                self.seen[path] = snapshot.seen_state()
            elif snapshot.severity == "critical" and (old is None or old.severity != "critical"):
                failed.append(snapshot)
            self.snapshots[path] = snapshot
        if batch.loaded and not self.loaded:
            self.loaded = True
            self._announce_loaded()
        self.home.table.update_runs(batch.snapshots.values())
        for snapshot in failed:
            crash = snapshot.crash
            why = f"{snapshot.status}: {crash.label}" if crash is not None else snapshot.status
            self.notify(f"{snapshot.name}: {why}", title="Run failed", severity="error", timeout=30, markup=False)
        if isinstance(self.screen, (RunScreen, ConfigScreen)):
            self.screen.runs_changed(set(batch.snapshots))
        if batch.events:
            self.alert(batch.events)

    def alert(self, events: list[Event]) -> None:
        """Reach the user who is not looking: the bell and a desktop notification, and `--notify`."""
        if self.notifier is not None:
            self.notifier.add(events)
        if self.quiet or self.is_headless or self._driver is None:
            return
        self.bell()
        for message in compose(events):
            detail = message.events[0].detail if len(message.events) == 1 else ""
            self._driver.write(notification(message.title, detail))

    def _announce_loaded(self) -> None:
        failed = sorted((s for s in self.snapshots.values() if s.severity == "critical"), key=lambda s: s.name)
        if not self.snapshots:
            roots = ", ".join(self.settings.roots)
            self.notify(f"No runs found under {roots} (yet): watching for new ones.", timeout=10, markup=False)
        elif failed:
            self.notify(failed_runs_message(failed), severity="warning", timeout=8, markup=False)

    def new_findings(self, snapshot: RunSnapshot | None) -> set[str]:
        """Rule ids of the run's findings that fired since the user last looked at the run."""
        if snapshot is None:
            return set()
        return snapshot.new_findings(self.seen.get(snapshot.path, {}))

    def leave_run(self, old: str | None, new: str | None) -> None:
        """The user looked at `old` and moved on: its findings are no longer news."""
        if old is None or old == new or old not in self.snapshots:
            return
        had_news = bool(self.new_findings(self.snapshots[old]))
        self.seen[old] = self.snapshots[old].seen_state()
        if had_news:
            self.home.table.refresh_row(old)

    def _refresh_ages(self) -> None:
        if self.screen is self.home:
            self.home.table.refresh_ages()

    def open_runs(self, paths: list[str]) -> None:
        self.loop.prefer(paths)
        self.push_screen(RunScreen(paths))

    def open_config(self, paths: list[str]) -> None:
        self.push_screen(ConfigScreen(paths))

    def _selected_run(self) -> str | None:
        selected = getattr(self.screen, "selected_run_path", None)
        return selected() if selected is not None else None

    # --- app-wide actions -------------------------------------------------------------------

    def watch_paused(self, paused: bool) -> None:
        self.loop.set_paused(paused)

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.notify("Paused: no new data is read (p resumes)." if self.paused else "Resumed.", timeout=3, markup=False)

    def action_refresh(self) -> None:
        self.loop.refresh_now()
        self.notify("Re-reading all runs…", timeout=2, markup=False)

    def action_copy(self) -> None:
        path = self._selected_run()
        snapshot = self.snapshots.get(path) if path else None
        if snapshot is None:
            self.notify("No run selected.", severity="warning", timeout=3, markup=False)
            return
        if snapshot.crash is not None and snapshot.crash.traceback:
            self.copy_to_clipboard(snapshot.crash.traceback)
            lines = snapshot.crash.traceback.count("\n") + 1
            self.notify(f"Traceback of {snapshot.name} copied ({lines} lines, via OSC 52).", timeout=4, markup=False)
        else:
            self.copy_to_clipboard(snapshot.path)
            self.notify(f"Path of {snapshot.name} copied (via OSC 52).", timeout=4, markup=False)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self._binding_rows(self.screen.active_bindings.values()), list(self.global_notes)))

    def _binding_rows(self, bindings: Iterable[ActiveBinding]) -> list[tuple[str, str, str]]:
        """(keys, what the action does, where it works), one row per action, from the live bindings."""
        rows: dict[tuple[str, int], list] = {}
        for active in bindings:
            binding = active.binding
            if not binding.description:
                continue
            display = binding.key_display or self.get_key_display(binding)
            where = getattr(active.node, "BINDING_GROUP_TITLE", None) or type(active.node).__name__
            row = rows.setdefault((binding.action, id(active.node)), [[], binding.tooltip or binding.description, where])
            if display not in row[0]:
                row[0].append(display)
        listed = [(", ".join(keys), description, where) for keys, description, where in rows.values()]
        return sorted(listed, key=lambda row: row[2] == self.BINDING_GROUP_TITLE)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for active in screen.active_bindings.values():
            binding = active.binding
            if binding.description and binding.action not in ("quit", "command_palette"):
                key = binding.key_display or binding.key.split(",")[0]
                yield SystemCommand(
                    binding.description,
                    f"{binding.tooltip or binding.description} (key: {key})",
                    partial(self.run_action, binding.action, active.node),
                )

    def action_export(self) -> None:
        path = self._selected_run()
        snapshot = self.snapshots.get(path) if path else None
        if snapshot is None:
            self.notify("No run selected.", severity="warning", timeout=3, markup=False)
            return
        default = default_report_path(snapshot.name, snapshot.path, os.getcwd(), os.path.expanduser("~"))
        if self.is_web:
            # In a browser (`rlhf-top serve`) the report is the browser's download: whoever reaches
            # the page must not write files on this machine.
            self._deliver_report(snapshot.path, os.path.basename(default))
            return
        self.push_screen(ExportScreen(snapshot.name, default), partial(self._export_to, snapshot.path))

    def _export_to(self, run_path: str, target: str | None, force: bool = False) -> None:
        if target is None:
            return
        destination = Path(os.path.expanduser(target))
        if any(is_inside(str(destination.parent), path) for path in self.snapshots):
            self.notify("A report is never written inside a run directory: choose another place.", severity="error", markup=False)
            return
        self._write_report(run_path, target, destination, force)

    def _report_text(self, run_path: str) -> str | None:
        """The Markdown report of the live run, or None when it is gone. Call off the UI thread."""
        with self.loop.lock:
            run = self.loop.run_by_path(run_path)
            session = self.loop.session
            return render_markdown(build_report(run, session.diagnosis(run))) if run and session else None

    @work(thread=True, exit_on_error=False, group="export")
    def _deliver_report(self, run_path: str, filename: str) -> None:
        text = self._report_text(run_path)
        if text is None:
            self.call_from_thread(self.notify, "That run is gone.", severity="error", markup=False)
            return
        self.call_from_thread(self.deliver_text, io.StringIO(text), save_filename=filename, mime_type="text/markdown")
        self.call_from_thread(self.notify, f"Report sent to your browser as {filename}", timeout=6, markup=False)

    @work(thread=True, exit_on_error=False, group="export")
    def _write_report(self, run_path: str, target: str, destination: Path, force: bool) -> None:
        """Build the report from the live run (under the session lock) and write it, off the UI thread."""
        text = self._report_text(run_path)
        problem, exists = None, False
        if text is None:
            problem = "That run is gone."
        else:
            try:
                write_new_file(destination, text, force=force)
            except FileExistsError:
                exists = True
            except OSError as exc:
                problem = f"Cannot write {destination}: {exc.strerror or exc}"
        self.post_message(ExportFinished(run_path, target, str(destination), problem, exists))

    @on(ExportFinished)
    def _export_finished(self, message: ExportFinished) -> None:
        if message.exists:
            self.push_screen(
                ConfirmScreen(f"{message.destination} exists. Overwrite it?"),
                lambda yes: self._export_to(message.run_path, message.target, force=True)
                if yes
                else self.notify("Not exported.", timeout=3),
            )
        elif message.problem is not None:
            self.notify(message.problem, severity="error", timeout=10, markup=False)
        else:
            self.notify(f"Report written to {message.destination}", timeout=6, markup=False)

    # --- the run view's data ------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, exclusive=True, group="config-view")
    def prepare_config_view(self, screen: ConfigScreen, paths: tuple[str, ...], only_differences: bool) -> None:
        """Copy the configurations of `paths` out of the live runs, off the UI thread, and post them to `screen`."""
        with self.loop.lock:
            runs = [run for run in map(self.loop.run_by_path, paths) if run is not None]
            if not runs:
                return
            data = prepare_config(runs, only_differences)
        screen.post_message(ConfigViewReady(data))

    @work(thread=True, exit_on_error=False, exclusive=True, group="run-view")
    def prepare_run_view(self, screen: RunScreen, request: RunViewRequest) -> None:
        """Copy the charts of `request` out of the live runs, off the UI thread, and post them to `screen`."""
        with self.loop.lock:
            session = self.loop.session
            runs = [run for run in map(self.loop.run_by_path, request.paths) if run is not None]
            if session is None or not runs:
                return
            data = prepare(runs, [session.diagnosis(run) for run in runs], request)
        screen.post_message(RunViewReady(data))
