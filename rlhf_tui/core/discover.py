"""Which directories under the roots are runs, and which of their files each reader follows.

A directory is a run when it holds an artefact: `metrics.jsonl`, `postmortem.json`,
`run_metadata*.json`, `trainer_state.json` (also in `checkpoint-N/`), TensorBoard event files,
console logs (`*.log`, `*.out`), LLaMA-Factory's `trainer_log.jsonl` or another `*.jsonl`.
Artefacts kept in a run's own sub-folders belong to the run above them: `ptt/` (PTT's `run_dir`),
`checkpoint-N/`, and `runs/<launch>/` (transformers' TensorBoard dir), as long as that run is
inside the root. A console log beside a run directory of the same name (`runs/NAME.log` next to
`runs/NAME/`) belongs to that run, and a log among other runs is a run of its own (`_log_owner`).

Trackers keep runs of their own: each `wandb/run-*/` or `wandb/offline-run-*/` folder, each run in
a Trackio or MLflow SQLite database (`*.db`) and each `mlruns/<experiment>/<run>/` folder is a run,
named by its tracker ("project/run name"). A tracker run whose config names the trainer's
`output_dir`, when that dir is under the root, is one run with it: its artefacts join the output
dir's, so a training logged to W&B, Trackio and TensorBoard at once is one run, whether or not the
output dir holds artefacts of its own. A relative `output_dir` is taken from where the tracker's
folder sits (where the training was launched, by default), an absolute one that is not there also
by its last name there (runs copied from another machine). Several runs of one tracker naming the
same output dir (a sweep writing into one folder) stay apart.

Everything is looked at through a filesystem (`filesystem.py`): this machine's, or a remote root's.
Tracker databases and MLflow file stores on a remote root are not read (a note says so): a database
would have to be copied here whole at every change.
"""

from __future__ import annotations

import fnmatch
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import NamedTuple

from rlhf_tui.core import runlog
from rlhf_tui.core.filesystem import LOCAL, Entry, FileSystem
from rlhf_tui.core.records import TrackerRun
from rlhf_tui.core.sources import mlflow, trackio, wandb
from rlhf_tui.core.sources.sqlite import DatabaseProblem, database
from rlhf_tui.core.sources.trainer_state import checkpoint_number

DEFAULT_MAX_DEPTH = 6

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ipynb_checkpoints",
        "site-packages",
        ".cache",
        "snapshots",
        "diffs",
        "reports",
    }
)
ARTEFACT_SUBDIRS = frozenset({"ptt"})
TENSORBOARD_PARENTS = frozenset({"runs", "logs", "tensorboard", "tb"})
CONSOLE_PATTERNS = ("*.log", "*.out", "nohup.out", "slurm-*.out", "*.err")
DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
WANDB_RUN_PREFIXES = ("run-", "offline-run-")
WANDB_DOCUMENTS = (
    ("files/config.yaml", "wandb_config"),
    ("files/wandb-metadata.json", "wandb_metadata"),
    ("logs/debug.log", "wandb_debug"),
)


def classify(filename: str) -> str | None:
    """The artefact kind of a file name, or None for files no reader wants."""
    if filename == runlog.METRICS_FILE:
        return "metrics"
    if filename == runlog.POSTMORTEM_FILE:
        return "postmortem"
    if filename == runlog.CRITICAL_FAILURE_FILE:
        return "critical"
    if filename.startswith("run_metadata") and filename.endswith(".json"):
        return "metadata"
    if filename == "trainer_state.json":
        return "trainer_state"
    if filename == "trainer_log.jsonl":
        return "llamafactory"
    if filename.endswith(".wandb"):
        return "wandb"
    if filename.startswith("events.out.tfevents."):
        return "tensorboard"
    if filename.endswith(".jsonl"):
        return "jsonl"
    if any(fnmatch.fnmatchcase(filename, pattern) for pattern in CONSOLE_PATTERNS):
        return "console"
    if filename == "README.md":
        return "model_card"
    return None


class Tracked(NamedTuple):
    """A tracker run found under the roots: which tracker, its run, and where it was launched."""

    tracker: str  # "wandb", "trackio", "mlflow"
    run: TrackerRun
    launch_dir: str  # the folder the tracker's own folder or database sits in


@dataclass
class Found:
    """The artefacts of every run found under the roots, and problems met on the way."""

    runs: dict[str, dict[str, str]] = field(default_factory=dict)  # run dir -> {path: kind}
    roots: dict[str, str] = field(default_factory=dict)  # run dir -> the root it was found under
    notes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # run dir -> its tracker's name for it
    tracked: dict[str, Tracked] = field(default_factory=dict)  # tracker run dir -> what it is
    stores: dict[str, tuple[str, str]] = field(default_factory=dict)  # artefact -> (database, run key)

    def merge(self, other: Found) -> None:
        """Add what was found under other roots."""
        self.runs.update(other.runs)
        self.roots.update(other.roots)
        self.notes.extend(other.notes)
        self.names.update(other.names)
        self.tracked.update(other.tracked)
        self.stores.update(other.stores)


def owning_run(directory: str, kind: str, root: str) -> str:
    """The run directory an artefact in `directory` belongs to."""
    name = os.path.basename(directory)
    parent = os.path.dirname(directory)
    if kind == "trainer_state" and checkpoint_number(name) is not None and _inside(parent, root):
        return parent
    if name in ARTEFACT_SUBDIRS and _inside(parent, root) and parent != directory:
        return parent
    if kind == "tensorboard" and os.path.basename(parent) in TENSORBOARD_PARENTS:
        grandparent = os.path.dirname(parent)
        if _inside(grandparent, root) and grandparent != parent:
            return grandparent
    return directory


def _leads_above_a_root(link: str, real_roots: tuple[str, ...], fs: FileSystem) -> bool:
    """A link to `/`, `..` or a root itself would make the walk cover the roots again (or the
    whole filesystem); a link elsewhere (a run kept on another disk) is followed."""
    target = fs.realpath(link)
    return any(_inside(root, target) for root in real_roots)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def discover(roots: list[str], max_depth: int = DEFAULT_MAX_DEPTH, fs: FileSystem = LOCAL) -> Found:
    found = Found()
    visited: set[object] = set()
    real_roots = tuple(fs.realpath(root) for root in roots)
    for root in roots:
        root = root if fs.remote else os.path.abspath(root)
        if not fs.isdir(root):
            found.notes.append(f"{root}: not a directory")
            continue
        if not _tracker_root(root, found, fs):
            _walk(root, root, 0, max_depth, visited, found, real_roots, fs)
    _join_output_dirs(found, fs)
    for run_dir, artefacts in list(found.runs.items()):
        if set(artefacts.values()) <= {"model_card"}:
            del found.runs[run_dir]
            del found.roots[run_dir]
    return found


def _walk(
    directory: str,
    root: str,
    depth: int,
    max_depth: int,
    visited: set[object],
    found: Found,
    real_roots: tuple[str, ...],
    fs: FileSystem,
) -> None:
    try:
        identity = fs.identity(directory)
    except OSError as exc:
        found.notes.append(f"{directory}: {exc.strerror or exc}")
        return
    if identity in visited:
        if fs.islink(directory):
            found.notes.append(f"{directory}: symlink to a directory already seen, skipped")
        return
    visited.add(identity)
    try:
        entries = list(fs.scandir(directory))
    except OSError as exc:
        found.notes.append(f"{directory}: cannot list ({exc.strerror or exc})")
        return
    subdirs = []
    files = []
    for entry in entries:
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if is_dir:
            if entry.name in SKIP_DIRS or entry.name.startswith("."):
                continue
            if entry.is_symlink() and _leads_above_a_root(entry.path, real_roots, fs):
                found.notes.append(f"{entry.path}: symlink to a root or above it, not followed")
                continue
            if entry.name == "wandb":
                _wandb_folder(entry.path, root, found, fs)
            elif entry.name == "mlruns":
                if fs.remote:
                    _not_read_remotely(entry.path, "an MLflow file store", found)
                else:
                    _mlflow_file_store(entry.path, root, found)
            else:
                subdirs.append(entry.path)
        elif is_file:
            files.append(entry)
    in_checkpoint = checkpoint_number(os.path.basename(directory)) is not None
    run_dirs_beside = {os.path.basename(path) for path in subdirs if _may_be_a_run(os.path.basename(path))}
    logs = []
    for entry in files:
        if entry.name.endswith(DATABASE_SUFFIXES) and not in_checkpoint:
            if fs.remote:
                _not_read_remotely(entry.path, "a database", found)
            else:
                _tracker_database(entry.path, root, found)
            continue
        kind = classify(entry.name)
        stem, extension = os.path.splitext(entry.name)
        if kind is None and extension == ".txt" and stem in run_dirs_beside:
            kind = "console"  # `python train.py > NAME.txt` beside its output dir NAME/
        if kind is None or (in_checkpoint and kind != "trainer_state"):
            continue
        if kind == "console":
            logs.append((entry.path, stem))
            continue
        run_dir = owning_run(directory, kind, root)
        found.runs.setdefault(run_dir, {})[entry.path] = kind
        found.roots.setdefault(run_dir, root)
    known_before = len(found.runs)
    if not in_checkpoint and depth < max_depth:
        for subdir in sorted(subdirs):
            if fs.exists(os.path.join(subdir, "pyvenv.cfg")):
                continue
            _walk(subdir, root, depth + 1, max_depth, visited, found, real_roots, fs)
    if logs:
        runs_below = any(run_dir != directory for run_dir in list(found.runs)[known_before:])
        for path, stem in logs:
            run_dir = _log_owner(directory, stem, run_dirs_beside, runs_below, found)
            found.runs.setdefault(run_dir, {})[path] = "console"
            found.roots.setdefault(run_dir, root)


def _may_be_a_run(name: str) -> bool:
    """A sub-folder that is a run of its own, not one of its parent run's artefact folders."""
    return name not in ARTEFACT_SUBDIRS and name not in TENSORBOARD_PARENTS and checkpoint_number(name) is None


def _log_owner(directory: str, stem: str, run_dirs_beside: set[str], runs_below: bool, found: Found) -> str:
    """The run a console log `directory/<stem>.<ext>` belongs to.

    `tee runs/NAME.log` beside the output dir `runs/NAME/` is that run's log; a log among other runs,
    in a folder that is not a run itself, is a run of its own named after the file (the folder is
    not a run); anywhere else (a run dir's `train.log`, a folder of one job's logs) it is the
    folder's log.
    """
    if stem in run_dirs_beside or (runs_below and directory not in found.runs):
        return os.path.join(directory, stem)
    return directory


# --- runs kept by trackers ------------------------------------------------------------------


def _add_tracked(found: Found, run_dir: str, root: str, artefacts: dict[str, str], tracked: Tracked) -> None:
    found.runs[run_dir] = artefacts
    found.roots[run_dir] = root
    found.names[run_dir] = tracked.run.name
    found.tracked[run_dir] = tracked


def _subdirs(path: str, fs: FileSystem = LOCAL) -> list[Entry]:
    try:
        return sorted((e for e in fs.scandir(path) if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
    except OSError:
        return []


def _not_read_remotely(path: str, what: str, found: Found) -> None:
    found.notes.append(f"{path}: {what} on a remote root is not read (run rlhf-top on that machine, or copy it here)")


def _wandb_folder(path: str, root: str, found: Found, fs: FileSystem) -> None:
    """`wandb/`: its `run-*` and `offline-run-*` folders (`latest-run` is a link to one of them)."""
    for entry in _subdirs(path, fs):
        if entry.name.startswith(WANDB_RUN_PREFIXES):
            _wandb_run(entry.path, root, found, fs)


def _wandb_run(run_dir: str, root: str, found: Found, fs: FileSystem) -> None:
    files = os.path.join(run_dir, "files")
    try:
        logs = sorted(e.path for e in fs.scandir(run_dir) if e.name.endswith(".wandb") and e.is_file())
    except OSError:
        return
    artefacts = {log: "wandb" for log in logs}
    config = os.path.join(files, "config.yaml")
    for name, kind in WANDB_DOCUMENTS:
        if fs.isfile(os.path.join(run_dir, name)):
            artefacts[os.path.join(run_dir, name)] = kind
    if not logs and fs.isfile(os.path.join(files, "output.log")):
        artefacts[os.path.join(files, "output.log")] = "wandb_output"
    if not artefacts:
        return
    info = wandb.run_info(logs[0] if logs else None, config if fs.isfile(config) else None, fs)
    run_id = info.run_id or os.path.basename(run_dir).rsplit("-", 1)[-1]
    label = info.name or run_id
    name = f"{info.project}/{label}" if info.project else label
    launch_dir = os.path.dirname(os.path.dirname(run_dir))
    _add_tracked(found, run_dir, root, artefacts, Tracked("wandb", TrackerRun(run_id, name, info.output_dir), launch_dir))


def _mlflow_file_store(path: str, root: str, found: Found) -> None:
    """`mlruns/<experiment>/<run>/meta.yaml`: artifacts and the trash are not looked into."""
    for experiment in _subdirs(path):
        if not experiment.name.startswith("."):
            for entry in _subdirs(experiment.path):
                _mlflow_run(entry.path, root, found)


def _mlflow_run(run_dir: str, root: str, found: Found) -> None:
    run = mlflow.list_file_store_run(run_dir)
    if run is not None:
        launch_dir = os.path.dirname(os.path.dirname(os.path.dirname(run_dir)))
        artefacts = {os.path.join(run_dir, "meta.yaml"): "mlflow_files"}
        _add_tracked(found, run_dir, root, artefacts, Tracked("mlflow", run, launch_dir))


def _tracker_root(root: str, found: Found, fs: FileSystem) -> bool:
    """A root that is a tracker's own folder, or a run in it: `rlhf-top report wandb/run-...`."""
    name, parent = os.path.basename(root), os.path.basename(os.path.dirname(root))
    if name == "wandb":
        _wandb_folder(root, root, found, fs)
    elif parent == "wandb" and name.startswith(WANDB_RUN_PREFIXES):
        _wandb_run(root, root, found, fs)
    elif fs.remote:
        return False
    elif name == "mlruns":
        _mlflow_file_store(root, root, found)
    elif parent == "mlruns" and os.path.isfile(os.path.join(root, "meta.yaml")):
        for entry in _subdirs(root):
            _mlflow_run(entry.path, root, found)
    elif os.path.basename(os.path.dirname(os.path.dirname(root))) == "mlruns" and os.path.isfile(os.path.join(root, "meta.yaml")):
        _mlflow_run(root, root, found)
    else:
        return False
    return True


_database_cache: dict[str, tuple[object, str | None, list[TrackerRun]]] = {}
_DATABASE_CACHE_SIZE = 1024


def _tracker_database(path: str, root: str, found: Found) -> None:
    """A Trackio or MLflow database: one run per tracker run in it; other databases are not runs."""
    store = database(path)
    signature = store.signature()
    cached = _database_cache.get(path)
    if cached is None or cached[0] != signature:
        try:
            with store.connect() as connection:
                runs = trackio.list_runs(connection, trackio.project_name(path))
                tracker = "trackio"
                if runs is None:
                    runs, tracker = mlflow.list_runs(connection), "mlflow"
        except DatabaseProblem as problem:
            if not problem.transient and _looks_like_a_tracker_database(path):
                found.notes.append(f"{path}: {problem}")
            if cached is None:
                return
        else:
            if len(_database_cache) >= _DATABASE_CACHE_SIZE:
                _database_cache.clear()
            cached = _database_cache[path] = (signature, tracker if runs is not None else None, runs or [])
    _, kind, runs = cached
    if kind is None:
        return
    for run in runs:
        run_dir = os.path.join(path, urllib.parse.quote(run.key, safe=""))
        artefact = os.path.join(run_dir, kind)
        found.stores[artefact] = (path, run.key)
        launch_dir = os.path.dirname(path)
        if kind == "trackio":  # TRACKIO_DIR is a folder of its own, in the launch dir or elsewhere
            launch_dir = os.path.dirname(launch_dir)
        _add_tracked(found, run_dir, root, {artefact: kind}, Tracked(kind, run, launch_dir))


def _looks_like_a_tracker_database(path: str) -> bool:
    """MLflow's default database name, or a Trackio project (trackio keeps a `<project>.lock` beside it)."""
    stem, _ = os.path.splitext(path)
    return os.path.basename(path) == "mlflow.db" or os.path.exists(stem + ".lock")


def _join_output_dirs(found: Found, fs: FileSystem) -> None:
    """Tracker runs join the trainer output dir their config names, when it is under their root."""
    claims: dict[str, list[str]] = {}
    for run_dir, tracked in found.tracked.items():
        target = _output_dir_run(tracked, found.roots[run_dir], found, fs)
        if target is not None:
            claims.setdefault(target, []).append(run_dir)
    for target, claimants in claims.items():
        runs_per_tracker: dict[str, set[str]] = {}
        for run_dir in claimants:
            tracked = found.tracked[run_dir]
            runs_per_tracker.setdefault(tracked.tracker, set()).add(tracked.run.key)
        for run_dir in claimants:
            if len(runs_per_tracker[found.tracked[run_dir].tracker]) > 1:
                continue
            found.roots.setdefault(target, found.roots[run_dir])
            found.runs.setdefault(target, {}).update(found.runs.pop(run_dir))
            del found.roots[run_dir], found.names[run_dir], found.tracked[run_dir]


def _output_dir_run(tracked: Tracked, root: str, found: Found, fs: FileSystem) -> str | None:
    output_dir = tracked.run.output_dir
    if not output_dir:
        return None
    if os.path.isabs(output_dir):
        candidates = [output_dir, os.path.join(tracked.launch_dir, os.path.basename(output_dir.rstrip("/")))]
    else:
        candidates = [os.path.join(tracked.launch_dir, output_dir)]
    for candidate in candidates:
        candidate = fs.normpath(candidate)
        if candidate in found.tracked:
            continue
        if candidate in found.runs or (_inside(candidate, root) and fs.isdir(candidate)):
            return candidate
    return None
