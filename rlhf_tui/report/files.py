"""Writing a report where the user says: never inside a run directory, never over a file unasked."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def is_inside(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or below it, symlinks resolved: reports never go into runs."""
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def write_new_file(path: Path, text: str, force: bool = False) -> None:
    """Write `text` to `path`, never replacing an existing file unless `force`.

    Written to a temporary file in the same directory first, then linked into place (fails with
    FileExistsError if `path` appeared meanwhile) or, with `force`, renamed over it: a reader never
    sees half a report. A missing parent directory is a FileNotFoundError naming it.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"directory {parent} does not exist", str(path))
    if not force and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(tmp, 0o644)
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
