"""The live engine shared by the TUI and the headless commands: roots -> runs, kept current.

`scan()` finds runs and their files (new ones appear, deleted ones are marked gone, a file that
now belongs to another run moves there); `poll()` reads what changed, a bounded number of bytes per
pass so a huge backlog in one run never blocks the others; `catch_up()` reads everything there is
(for `--once`). Who tells it what changed (watchfiles, a stat poll) is `watch.py`'s business.
A root on another machine (`ssh://`, `s3://`, `gs://`) is found and read by its own thread
(`remote.py`); the monitor takes what that thread found and read without ever waiting on it.

A big JSONL metrics log found at start (or later) is split at its size: its history is read in worker
processes (history.py) while the monitor goes on with everything else, and its tail is shown
meanwhile when `preview` is set (the TUI, `watch`); from there it is followed like any file.

Files are followed three ways: appended streams (`FileTail` + a reader fed the new bytes), whole
documents re-read when they change (`WholeFile`), and tracker stores that are queried, not read
(a Trackio or MLflow database, an MLflow file-store run): those sources follow themselves, and
`read()` returns what is new, or None when nothing changed.
"""

from __future__ import annotations

import gc
import os
import stat
import threading
from contextlib import contextmanager
from collections.abc import Callable, Iterable
from typing import Any

from rlhf_tui.core.discover import DEFAULT_MAX_DEPTH, discover
from rlhf_tui.core.filesystem import LOCAL, is_remote
from rlhf_tui.core.history import HISTORY_MIN_BYTES, READERS, Histories, History, Job, default_workers, read_tail
from rlhf_tui.core.records import Update
from rlhf_tui.core.remote import RemoteRoot, RemoteSettings, RootStatus
from rlhf_tui.core.run import ProcessProbe, Run, SourceFile
from rlhf_tui.core.sources.console_log import ConsoleLogReader
from rlhf_tui.core.sources.jsonl import JsonlReader
from rlhf_tui.core.sources.llamafactory import LlamaFactoryReader
from rlhf_tui.core.sources.mlflow import MlflowFileRun, MlflowRun
from rlhf_tui.core.sources.model_card import read_model_card
from rlhf_tui.core.sources.ptt import (
    PttMetricsReader,
    read_critical_failure,
    read_metadata,
    read_postmortem,
)
from rlhf_tui.core.sources.sqlite import database
from rlhf_tui.core.sources.tensorboard import TensorBoardReader
from rlhf_tui.core.sources.trackio import TrackioRun
from rlhf_tui.core.sources.trainer_state import checkpoint_number, read_trainer_state
from rlhf_tui.core.sources.wandb import (
    WandbReader,
    read_config_yaml,
    read_debug_log,
    read_metadata_json,
    read_output_log,
)
from rlhf_tui.core.tail import FileTail, WholeFile

FILE_BUDGET = 8 * 1024 * 1024
PASS_BUDGET = 32 * 1024 * 1024

STREAM_READERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "metrics": ("ptt", PttMetricsReader),
    "jsonl": ("jsonl", JsonlReader),
    "tensorboard": ("tensorboard", TensorBoardReader),
    "console": ("console", ConsoleLogReader),
    "wandb": ("wandb", WandbReader),
    "llamafactory": ("llamafactory", LlamaFactoryReader),
}
DOCUMENT_READERS: dict[str, tuple[str | None, Callable[[bytes, str], Any]]] = {
    "trainer_state": ("trainer_state", read_trainer_state),
    "postmortem": (None, read_postmortem),
    "critical": (None, read_critical_failure),
    "metadata": (None, read_metadata),
    "model_card": (None, read_model_card),
    "wandb_config": (None, read_config_yaml),
    "wandb_metadata": (None, read_metadata_json),
    "wandb_debug": (None, read_debug_log),
    "wandb_output": ("console", read_output_log),
}
TRACKER_STORES = {"trackio": "trackio", "mlflow": "mlflow", "mlflow_files": "mlflow"}  # kind -> logical
ROW_COST = 128  # bytes of the pass budget one database row counts for
_JOURNALS = ("-wal", "-journal")


class Monitor:
    def __init__(
        self,
        roots: Iterable[str],
        max_depth: int = DEFAULT_MAX_DEPTH,
        analyze: Callable[[Run], Any] | None = None,
        file_budget: int = FILE_BUDGET,
        pass_budget: int = PASS_BUDGET,
        process_probe: ProcessProbe | None = None,
        remote: RemoteSettings | None = None,
        workers: int | None = None,
    ) -> None:
        """workers: processes that read histories (None: one per core; 0: read them in-process)."""
        self.remotes: dict[str, RemoteRoot] = {}
        self.roots = []
        for root in roots:
            if is_remote(root):
                found_remote = RemoteRoot(root, remote, max_depth, on_change=self._remote_changed)
                self.remotes[found_remote.root] = found_remote
                self.roots.append(found_remote.root)
            else:
                self.roots.append(os.path.abspath(root))
        self.local_roots = [root for root in self.roots if root not in self.remotes]
        self.on_remote_change: Callable[[], None] | None = None  # a remote root found or read something
        self._remote_event = threading.Event()
        self._discoveries: dict[str, int] = {}
        self.process_probe = process_probe  # who says whether a run's process lives (run.process_alive)
        self.max_depth = max_depth
        self.analyze = analyze
        self.file_budget = file_budget
        self.pass_budget = pass_budget
        self.runs: dict[str, Run] = {}
        self._by_path: dict[str, tuple[Run, SourceFile]] = {}
        self._pending: set[str] = set()
        self._found_notes: list[str] = []
        self.histories = Histories(default_workers() if workers is None else workers)
        self._arrived: list[History] = []
        self.preview = False  # show the tail of a file while its history loads
        self._on_screen: frozenset[str] = frozenset()  # runs kept at full resolution
        for found_remote in self.remotes.values():
            found_remote.start()

    def close(self) -> None:
        """Stop the remote roots' threads and the history workers."""
        for remote in self.remotes.values():
            remote.stop()
        self.histories.close()

    @property
    def notes(self) -> list[str]:
        """Problems met finding runs, and why a remote root is not connected."""
        return self._found_notes + [s.message for s in self.root_status() if s.message]

    def root_status(self) -> list[RootStatus]:
        return [remote.status() for remote in self.remotes.values()]

    def _remote_changed(self) -> None:
        self._remote_event.set()
        if self.on_remote_change is not None:
            self.on_remote_change()

    def _remote_of(self, path: str) -> RemoteRoot | None:
        for root, remote in self.remotes.items():
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return remote
        return None

    # --- discovery -------------------------------------------------------------------------

    def scan(self) -> set[Run]:
        """Find runs and files; returns runs that appeared, gained files or went away."""
        found = discover(self.local_roots, self.max_depth)
        for root, remote in self.remotes.items():
            self._discoveries[root] = remote.discoveries
            if remote.found is not None:
                found.merge(remote.found)
        self._found_notes = found.notes
        changed: set[Run] = set()
        owners = {path: run_dir for run_dir, artefacts in found.runs.items() for path in artefacts}
        for path, (owner, file) in list(self._by_path.items()):
            if owners.get(path, owner.path) != owner.path:  # a tracker run joined its output dir (or left it)
                self._release(owner, file)
                changed.add(owner)
        for run_dir, artefacts in found.runs.items():
            run = self.runs.get(run_dir)
            if run is None:
                root = found.roots[run_dir]
                run = self.runs[run_dir] = Run(run_dir, root)
                run.name = found.names.get(run_dir, run.name)
                if len(self.roots) > 1:  # several roots may hold runs of the same name
                    label = os.path.basename(root.rstrip(os.sep))
                    if root in self.remotes:
                        label = f"{self.remotes[root].fs.host}:{label}"
                    run.name = os.path.join(label, run.name)
                changed.add(run)
            if run.gone:
                run.gone = False
                run.touch()
                changed.add(run)
            if self._attach_files(run, artefacts, found.stores):
                changed.add(run)
        for run_dir, run in self.runs.items():
            if run_dir in found.runs or run.gone:
                continue
            if not run.files:
                run.gone = True
                run.note("its files now belong to another run")
                changed.add(run)
            elif not self._isdir(run_dir):
                run.gone = True
                run.note("run directory deleted")
                changed.add(run)
        return changed

    def _isdir(self, path: str) -> bool:
        remote = self._remote_of(path)
        return os.path.isdir(path) if remote is None else path in remote.directories

    def _release(self, run: Run, file: SourceFile) -> None:
        """A file leaves its run: what it fed goes with it (it is read again in its new run)."""
        self._forget(run, file.path)
        if file.logical in run.data and all(other.logical != file.logical for other in run.files.values()):
            del run.data[file.logical]
            if run.primary == file.logical:
                run.primary = None
                run.generation += 1
                run.choose_primary()
        run.merge_facts()

    def _attach_files(self, run: Run, artefacts: dict[str, str], stores: dict[str, tuple[str, str]]) -> bool:
        added: list[str] = []
        newest_state = _newest_trainer_state(artefacts)
        for path, kind in sorted(artefacts.items()):
            if path in run.files:
                continue
            if kind == "trainer_state" and path != newest_state:
                continue
            if kind == "trainer_state":
                for old in [p for p, f in run.files.items() if f.kind == "trainer_state"]:
                    self._forget(run, old)
            run.files[path] = self._source_file(path, kind, stores.get(path))
            self._by_path[path] = (run, run.files[path])
            added.append(path)
        for path in added:
            self._start(run, run.files[path])
        return bool(added)

    def _start(self, run: Run, file: SourceFile) -> None:
        """Read a new file: at once, or a big log's history off the live path (its tail first)."""
        for other in list(run.files.values()):
            if other is not file and other.history is not None and other.logical == file.logical:
                self._abandon_history(run, other)  # two files feed that source now: read in step
        job = self._history_job(run, file)
        if job is None:
            self._pending.add(file.path)
            return
        file.history = job
        self.histories.add(job)
        if self.preview:
            update = _safely(read_tail, job)
            update.notes = []  # the history brings them, with the right line numbers
            if file.kind == "metrics":
                _settle_metrics_logical(file, update)
            if _shares_source(run, file):  # a headerless metrics.jsonl beside another JSONL log
                self._abandon_history(run, file)
                return
            run.apply(file, update, job.mtime)

    def _abandon_history(self, run: Run, file: SourceFile) -> None:
        """Read a file whose history is loading the ordinary way instead, from its start."""
        self.histories.cancel(file.path)
        file.history = None
        self._drop_preview(run, file)
        self._pending.add(file.path)

    def _drop_preview(self, run: Run, file: SourceFile) -> None:
        """Forget what the tail shown while the history loaded said: the history says it all again."""
        file.finished = False
        file.crash = None
        file.facts = {}
        shown_as, file.logical = file.logical, STREAM_READERS[file.kind][0]
        if shown_as in run.data and not _shares_source(run, file, shown_as):
            if run.primary == shown_as:
                run.generation += 1
                run.primary = None
            del run.data[shown_as]
        run.merge_facts()
        run.choose_primary()

    def _history_job(self, run: Run, file: SourceFile) -> Job | None:
        follower = file.follower
        if file.kind not in READERS or type(follower) is not FileTail or follower.fs is not LOCAL:
            return None
        if _shares_source(run, file):
            return None  # several files feed that source: they are read in step, the ordinary way
        try:
            st = os.stat(file.path)
        except OSError:
            return None
        if st.st_size < HISTORY_MIN_BYTES or not stat.S_ISREG(st.st_mode):
            return None
        return Job(file.path, file.kind, st.st_size, (st.st_dev, st.st_ino), st.st_mtime)

    def _apply_history(self, history: History) -> Run | None:
        """A history read: it replaces the tail shown meanwhile; the file is followed from its end."""
        job = history.job
        entry = self._by_path.get(job.path)
        if entry is None or entry[1].history != job:
            return None  # the file left its run meanwhile
        run, file = entry
        file.history = None
        self._pending.add(file.path)
        self._drop_preview(run, file)
        update = history.update
        if update is None:  # replaced or shrunk meanwhile: read from its start like any file
            return run
        if file.kind == "metrics":
            _settle_metrics_logical(file, update)
        if _shares_source(run, file):  # a headerless metrics.jsonl beside another JSONL log
            file.logical = STREAM_READERS[file.kind][0]
            return run
        file.reader = history.reader
        follower = file.follower
        follower.offset, follower.identity, follower.size = job.size, job.identity, job.size
        file.bytes_read += job.size
        run.full_resolution = run.path in self._on_screen
        run.apply(file, update, job.mtime)
        return run

    def _forget(self, run: Run, path: str) -> None:
        remote = self._remote_of(path)
        if remote is not None:
            remote.unfollow(path)
        self.histories.cancel(path)
        run.files.pop(path, None)
        self._by_path.pop(path, None)
        self._pending.discard(path)

    def _source_file(self, path: str, kind: str, store: tuple[str, str] | None) -> SourceFile:
        name = os.path.basename(path)
        remote = self._remote_of(path)
        if kind in TRACKER_STORES:
            if kind == "mlflow_files":
                source: Any = MlflowFileRun(os.path.dirname(path))
            else:
                assert store is not None  # discovery names the database and run of these
                database_path, run_key = store
                source = (TrackioRun if kind == "trackio" else MlflowRun)(database(database_path), run_key)
            return SourceFile(path, kind, TRACKER_STORES[kind], source, source)
        if kind in STREAM_READERS:
            stream, factory = STREAM_READERS[kind]
            tail = FileTail(path) if remote is None else remote.follow(path, stream=True)
            return SourceFile(path, kind, stream, factory(name), tail)
        document, reader = DOCUMENT_READERS[kind]
        whole = WholeFile(path) if remote is None else remote.follow(path, stream=False)
        return SourceFile(path, kind, document, reader, whole)

    # --- reading ---------------------------------------------------------------------------

    def poll(self, paths: Iterable[str] | None = None) -> set[Run]:
        """Read new data from the given paths (all known files when None) plus any backlog, and
        what remote roots read meanwhile (and the runs they found, if they looked again)."""
        found_runs = set()
        if any(remote.discoveries != self._discoveries.get(root) for root, remote in self.remotes.items()):
            found_runs = self.scan()
        if paths is None:
            wanted = set(self._by_path)
        else:
            wanted = set()
            for path in paths:
                if path in self._by_path:
                    wanted.add(path)
                    continue
                if path.endswith(_JOURNALS):  # a database's WAL or journal: the database changed
                    path = path.rsplit("-", 1)[0]
                wanted.update(p for p in self._by_path if p.startswith(path.rstrip(os.sep) + os.sep))
                wanted.update(self._store_file_of(path))
        wanted |= self._pending
        self._pending = set()
        for remote in self.remotes.values():
            wanted |= remote.take_ready()
        budget = self.pass_budget
        changed: set[Run] = set(found_runs)
        with _collector_paused():
            arrived, self._arrived = self._arrived + self.histories.take(), []
            for history in arrived:
                run = self._apply_history(history)
                if run is not None:
                    changed.add(run)
                    wanted.add(history.job.path)
            self._read_wanted(sorted(wanted), budget, changed)
        for run in changed:
            if self.analyze is not None:
                self.analyze(run)
        return changed

    def _read_wanted(self, wanted: list[str], budget: int, changed: set[Run]) -> None:
        for path in wanted:
            entry = self._by_path.get(path)
            if entry is None:
                continue
            run, file = entry
            if file.history is not None:
                continue  # read when its history is
            run.full_resolution = run.path in self._on_screen
            if budget <= 0:
                self._pending.add(path)
                continue
            versions = run.version
            budget -= self._read_file(run, file, min(self.file_budget, budget))
            if run.version != versions:
                changed.add(run)

    def _store_file_of(self, path: str) -> list[str]:
        """An MLflow file-store run's `meta.yaml` artefact, for a change anywhere in that run's folder."""
        parent = os.path.dirname(path)
        for _ in range(8):
            meta = os.path.join(parent, "meta.yaml")
            entry = self._by_path.get(meta)
            if entry is not None and entry[1].kind == "mlflow_files":
                return [meta]
            parent = os.path.dirname(parent)
        return []

    @property
    def backlog(self) -> bool:
        return bool(self._pending) or bool(self.histories) or bool(self._arrived)

    def await_history(self, timeout: float) -> None:
        """Wait up to `timeout` s for a history to be read (without touching any run: no lock needed)."""
        if self.histories and not self._arrived and not self._pending:
            self._arrived += self.histories.take(timeout)

    def prefer(self, run_paths: Iterable[str]) -> None:
        """The runs on screen: their histories are read before the others', and none of their keys
        is decimated while they are; any thread."""
        self._on_screen = frozenset(run_paths)
        self.histories.prefer(self._on_screen)

    def catch_up(self) -> set[Run]:
        """Read everything there is. Remote roots first find their runs (or fail to), then read each
        file up to the size it had when they last looked."""
        changed: set[Run] = set()
        if self.remotes:
            while not all(remote.settled() for remote in self.remotes.values()):
                self._await_remote()
            changed |= self.scan()
        changed |= self.poll()
        while True:
            while self.backlog:
                if not self._pending:
                    self.await_history(0.1)
                changed |= self.poll([])
            if not any(remote.behind() for remote in self.remotes.values()):
                return changed
            self._await_remote()
            changed |= self.poll([])

    def remote_caught_up(self) -> bool:
        """Every remote root has looked for its runs (or failed to) and has read all it found."""
        return all(remote.settled() and not remote.behind() for remote in self.remotes.values())

    def _await_remote(self) -> None:
        self._remote_event.wait(0.1)
        self._remote_event.clear()

    def _read_file(self, run: Run, file: SourceFile, budget: int) -> int:
        follower = file.follower
        if file.kind in TRACKER_STORES:
            return self._query_store(run, file, budget)
        stream = file.kind in STREAM_READERS
        if stream:
            result = follower.read(budget)
        else:
            result = follower.read_if_changed()
            if result is None:
                return 0
        if result.missing:
            if not file.missing:
                file.missing = True
                run.note(f"{os.path.relpath(file.path, run.path)}: file disappeared")
            return 0
        file.missing = False
        if result.error:
            if result.error != file.error:
                file.error = result.error
                run.note(f"{os.path.relpath(file.path, run.path)}: {result.error}")
            return 0
        file.error = None
        if stream:
            if result.reset:
                self._restart_stream(run, file)
            if result.pending:
                self._pending.add(file.path)
            if not result.data:
                return 0
            update = _safely(file.reader.feed, result.data)
            if file.kind == "metrics":
                _settle_metrics_logical(file, update)
            file.bytes_read += len(result.data)
        else:
            update = _safely(file.reader, result.data, os.path.basename(file.path))
        run.apply(file, update, follower.mtime)
        verdict = getattr(file.reader, "crash", file.crash)
        if verdict is not file.crash:  # a stream reader may take back a crash training went on after
            file.crash = verdict
            run.touch()
        return len(result.data)

    def _query_store(self, run: Run, file: SourceFile, budget: int) -> int:
        source = file.follower
        update = _safely(source.read, max(1, budget // ROW_COST))
        if update is None:
            return 0
        if source.pending:
            self._pending.add(file.path)
        run.apply(file, update, source.mtime)
        verdict = getattr(source, "crash", file.crash)
        if verdict is not file.crash:
            file.crash = verdict
            run.touch()
        return ROW_COST * max(1, len(update.records))

    def _restart_stream(self, run: Run, file: SourceFile) -> None:
        run.note(f"{os.path.relpath(file.path, run.path)}: truncated or replaced, reading it again")
        logical, factory = STREAM_READERS[file.kind]
        file.reader = factory(os.path.basename(file.path))
        file.crash = None
        file.finished = False
        file.facts = {}
        if file.logical in run.data:
            if run.primary == file.logical:
                run.generation += 1
            del run.data[file.logical]
            for other in run.files.values():
                if other is not file and other.logical == file.logical:
                    other.follower.offset = 0
                    other.reader = STREAM_READERS[other.kind][1](os.path.basename(other.path))
                    self._pending.add(other.path)
        if run.primary == file.logical:
            run.primary = None
            run.choose_primary()

    # --- liveness --------------------------------------------------------------------------

    def check_processes(self) -> None:
        """Whether the processes of unfinished runs still live; not for runs on other machines, whose
        process ids mean nothing here even when the host has this one's name."""
        for run in self.runs.values():
            if not run.finished and run.crash is None and self._remote_of(run.path) is None:
                run.check_process(self.process_probe)

    def visible_runs(self) -> list[Run]:
        """Runs worth listing: a generic .jsonl that turned out not to be a metrics log is hidden."""
        return [run for run in self.runs.values() if _has_content(run)]


@contextmanager
def _collector_paused():
    """Parsing makes millions of small dicts that never form cycles; the cyclic garbage collector
    would rescan them all again and again (a third of the ingest time). Refcounting frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _newest_trainer_state(artefacts: dict[str, str]) -> str | None:
    best: tuple[int, str] | None = None
    for path, kind in artefacts.items():
        if kind != "trainer_state":
            continue
        number = checkpoint_number(os.path.basename(os.path.dirname(path)))
        rank = (number if number is not None else 1 << 62, path)
        if best is None or rank > best:
            best = rank
    return best[1] if best else None


def _settle_metrics_logical(file: SourceFile, update: Any) -> None:
    """A metrics.jsonl is ours, PTT's, or a plain JSONL log: the header says which."""
    writer = update.facts.get("writer")
    if writer == "rlhf-top":
        file.logical = "rlhf-top"
    elif writer is None and file.bytes_read == 0 and update.records:
        file.logical = "jsonl"


def _shares_source(run: Run, file: SourceFile, logical: str | None = None) -> bool:
    """Whether another file of the run feeds the source this file feeds (or `logical`)."""
    logical = file.logical if logical is None else logical
    return any(other is not file and other.logical == logical for other in run.files.values())


def _safely(function: Callable[..., Any], *args: Any) -> Any:
    """A reader bug must not take the monitor down: it becomes a note on that run."""
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - any reader failure is reported, never raised
        return Update(notes=[f"reader error: {type(exc).__name__}: {exc}"])


def _has_content(run: Run) -> bool:
    if run.data or run.crash is not None or run.finished or run.notes:
        return True
    readers = [f.reader for f in run.files.values() if f.kind == "jsonl"]
    return not readers or not all(getattr(r, "not_metrics", False) for r in readers)

