"""Incremental, read-only file reading: byte offsets, truncation and rotation, a byte budget per pass.

`FileTail` hands out the bytes appended since the last read; framing (lines, TFRecords) is the
reader's business, so a torn last line simply stays in the reader's buffer until the rest arrives.
`WholeFile` re-reads a small whole-file document (JSON) when its signature changes.
Both read through a filesystem (`filesystem.py`): this machine's by default, or a remote root's.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from rlhf_tui.core.filesystem import LOCAL, FileSystem, Stat

SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class TailRead:
    data: bytes = b""
    reset: bool = False  # the file was truncated or replaced: readers must start over
    pending: bool = False  # more bytes are waiting beyond the budget
    error: str | None = None
    missing: bool = False


def _identity(st: Stat) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class FileTail:
    """Follows one append-only file."""

    def __init__(self, path: str, fs: FileSystem = LOCAL) -> None:
        self.path = path
        self.fs = fs
        self.offset = 0
        self.identity: tuple[int, int] | None = None
        self.size = 0
        self.mtime = 0.0
        self.lost = False

    def _lose_track(self) -> None:
        """The file went away: whatever appears at this path next is a new file (filesystems reuse
        inode numbers at once, so the identity check alone would take it for the old one)."""
        if self.identity is not None:
            self.lost = True

    def read(self, budget: int) -> TailRead:
        try:
            st = self.fs.stat(self.path)
        except FileNotFoundError:
            self._lose_track()
            return TailRead(missing=True)
        except OSError as exc:
            return TailRead(error=f"cannot stat: {exc.strerror or exc}")
        if not _is_regular(st):
            self._lose_track()
            return TailRead(error="not a regular file")
        result = TailRead()
        identity = _identity(st)
        if self.lost or (
            self.identity is not None and (identity != self.identity or st.st_size < self.offset)
        ):
            self.lost = False
            result.reset = True
            self.offset = 0
        self.identity = identity
        self.size = st.st_size
        self.mtime = st.st_mtime
        if st.st_size <= self.offset:
            return result
        want = min(budget, st.st_size - self.offset)
        try:
            with self.fs.open(self.path) as handle:
                handle.seek(self.offset)
                data = handle.read(want)
        except FileNotFoundError:
            return TailRead(missing=True)
        except OSError as exc:
            return TailRead(error=f"cannot read: {exc.strerror or exc}")
        self.offset += len(data)
        result.data = data
        result.pending = self.offset < st.st_size
        return result


class WholeFile:
    """A whole-file document that is rewritten in place (trainer_state.json, postmortem.json)."""

    def __init__(self, path: str, fs: FileSystem = LOCAL) -> None:
        self.path = path
        self.fs = fs
        self.signature: tuple[int, int, int, int] | None = None
        self.mtime = 0.0

    def read_if_changed(self) -> TailRead | None:
        """The whole content when the file changed since the last call, else None."""
        try:
            st = self.fs.stat(self.path)
        except FileNotFoundError:
            return TailRead(missing=True)
        except OSError as exc:
            return TailRead(error=f"cannot stat: {exc.strerror or exc}")
        if not _is_regular(st):
            return TailRead(error="not a regular file")
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self.signature:
            return None
        if st.st_size > SNAPSHOT_MAX_BYTES:
            self.signature = signature
            return TailRead(error=f"too large to read ({st.st_size // 2**20} MiB)")
        try:
            with self.fs.open(self.path) as handle:
                data = handle.read(SNAPSHOT_MAX_BYTES)
        except FileNotFoundError:
            return TailRead(missing=True)
        except OSError as exc:
            return TailRead(error=f"cannot read: {exc.strerror or exc}")
        self.signature = signature
        self.mtime = st.st_mtime
        return TailRead(data=data, reset=True)


def _is_regular(st: Stat) -> bool:
    return stat.S_ISREG(st.st_mode)
