"""Which directories under the roots are runs, and which of their files each reader follows.

A directory is a run when it holds an artefact: `metrics.jsonl`, `postmortem.json`,
`run_metadata*.json`, `trainer_state.json` (also in `checkpoint-N/`), TensorBoard event files,
console logs (`*.log`, `*.out`) or another `*.jsonl`. Artefacts kept in a run's own
sub-folders belong to the run above them: `ptt/` (PTT's `run_dir`), `checkpoint-N/`, and
`runs/<launch>/` (transformers' TensorBoard dir), as long as that run is inside the root. A console
log beside a run directory of the same name (`runs/NAME.log` next to `runs/NAME/`) belongs to that
run, and a log among other runs is a run of its own (see `_log_owner`).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

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
        "wandb",
        ".cache",
        "snapshots",
        "diffs",
        "reports",
    }
)
ARTEFACT_SUBDIRS = frozenset({"ptt"})
TENSORBOARD_PARENTS = frozenset({"runs", "logs", "tensorboard", "tb"})
CONSOLE_PATTERNS = ("*.log", "*.out", "nohup.out", "slurm-*.out", "*.err")


def classify(filename: str) -> str | None:
    """The artefact kind of a file name, or None for files no reader wants."""
    if filename == "metrics.jsonl":
        return "metrics"
    if filename == "postmortem.json":
        return "postmortem"
    if filename == "critical_failure.json":
        return "critical"
    if filename.startswith("run_metadata") and filename.endswith(".json"):
        return "metadata"
    if filename == "trainer_state.json":
        return "trainer_state"
    if filename.startswith("events.out.tfevents."):
        return "tensorboard"
    if filename.endswith(".jsonl"):
        return "jsonl"
    if any(fnmatch.fnmatchcase(filename, pattern) for pattern in CONSOLE_PATTERNS):
        return "console"
    if filename == "README.md":
        return "model_card"
    return None


@dataclass
class Found:
    """The artefacts of every run found under the roots, and problems met on the way."""

    runs: dict[str, dict[str, str]] = field(default_factory=dict)  # run dir -> {path: kind}
    roots: dict[str, str] = field(default_factory=dict)  # run dir -> the root it was found under
    notes: list[str] = field(default_factory=list)


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


def _leads_above_a_root(link: str, real_roots: tuple[str, ...]) -> bool:
    """A link to `/`, `..` or a root itself would make the walk cover the roots again (or the
    whole filesystem); a link elsewhere (a run kept on another disk) is followed."""
    target = os.path.realpath(link)
    return any(_inside(root, target) for root in real_roots)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def discover(roots: list[str], max_depth: int = DEFAULT_MAX_DEPTH) -> Found:
    found = Found()
    visited: set[tuple[int, int]] = set()
    real_roots = tuple(os.path.realpath(root) for root in roots)
    for root in roots:
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            found.notes.append(f"{root}: not a directory")
            continue
        _walk(root, root, 0, max_depth, visited, found, real_roots)
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
    visited: set[tuple[int, int]],
    found: Found,
    real_roots: tuple[str, ...],
) -> None:
    try:
        st = os.stat(directory)
    except OSError as exc:
        found.notes.append(f"{directory}: {exc.strerror or exc}")
        return
    identity = (st.st_dev, st.st_ino)
    if identity in visited:
        if os.path.islink(directory):
            found.notes.append(f"{directory}: symlink to a directory already seen, skipped")
        return
    visited.add(identity)
    try:
        entries = list(os.scandir(directory))
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
            if entry.is_symlink() and _leads_above_a_root(entry.path, real_roots):
                found.notes.append(f"{entry.path}: symlink to a root or above it, not followed")
                continue
            subdirs.append(entry.path)
        elif is_file:
            files.append(entry)
    in_checkpoint = checkpoint_number(os.path.basename(directory)) is not None
    run_dirs_beside = {os.path.basename(path) for path in subdirs if _may_be_a_run(os.path.basename(path))}
    logs = []
    for entry in files:
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
            if os.path.exists(os.path.join(subdir, "pyvenv.cfg")):
                continue
            _walk(subdir, root, depth + 1, max_depth, visited, found, real_roots)
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
