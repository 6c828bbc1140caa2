"""Reading a tracker's SQLite database strictly read-only, while its writer may be running.

How, measured with SQLite 3.40 (a writer holding the database open with rows not yet checkpointed,
the writer gone, the directory read-only):

- A rollback-journal database (MLflow's `mlflow.db`): `mode=ro` takes a shared lock, creates no
  file and sees every committed row. A writer mid-commit makes it fail with "database is locked",
  which is tried again at the next poll.
- A WAL database (Trackio's) with no `-wal` file, or an empty one (no writer, or all rows
  checkpointed): `immutable=1` reads the main file without locks and creates nothing. `mode=ro`
  would create `-shm` and `-wal` files next to it (measured), so it is not used.
- A WAL database with a non-empty `-wal` (a writer is running): `mode=ro` would write read marks
  into the writer's `-shm`, and `immutable=1` ignores the WAL, so every row since the last
  checkpoint is missing (measured: a table created and filled by the writer was not there). So the
  database and its WAL are copied into a private temporary directory and the copy is opened there;
  the copy of the main file is reused until that file changes (at the writer's checkpoints), the
  WAL (at most a few MiB between checkpoints) is copied when it changed. A copy torn by a
  concurrent checkpoint is detected by the main file changing while it was copied, and retried.

No file is ever created, changed or removed next to the user's database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlhf_tui.core.records import Update

HEADER = b"SQLite format 3\x00"
ROWS_PER_READ = 20_000
_WAL_VERSION = 2  # header bytes 18 and 19 (write and read format versions) are 2 in WAL mode
_MAX_DATABASES = 256


class DatabaseProblem(Exception):
    """A database that cannot be read now. `transient` problems (a lock) are retried silently."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ReadOnlyDatabase:
    """One database file, opened read-only on demand; shared by all the runs it holds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._copy_dir: str | None = None
        self._copied_main: tuple[int, int, int] | None = None
        self._copied_wal: tuple[int, int, int] | None = None

    def signature(self) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
        """Changes whenever the database or its WAL does (the main file alone does not, in WAL mode)."""
        return file_signature(self.path), file_signature(self.path + "-wal")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        uri = self._uri()
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=0, check_same_thread=False)
        except sqlite3.Error as error:
            raise _problem(error) from None
        try:
            yield connection
        except sqlite3.Error as error:
            raise _problem(error) from None
        finally:
            connection.close()

    def _uri(self) -> str:
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(100)
        except OSError as error:
            raise DatabaseProblem(f"cannot read: {error.strerror or error}") from None
        if not header:
            raise DatabaseProblem("empty database file", transient=True)
        if not header.startswith(HEADER) or len(header) < 100:
            raise DatabaseProblem("not an SQLite database")
        if header[18] != _WAL_VERSION:
            return _file_uri(self.path, "mode=ro")
        wal = file_signature(self.path + "-wal")
        if wal is None or wal[1] == 0:
            return _file_uri(self.path, "immutable=1")
        return _file_uri(self._copy(), "mode=ro")

    def _copy(self) -> str:
        """A private copy of the database and its WAL, refreshed where they changed."""
        if self._copy_dir is None:
            self._copy_dir = tempfile.mkdtemp(prefix="rlhf-top-db-")
            weakref.finalize(self, shutil.rmtree, self._copy_dir, True)
        target = os.path.join(self._copy_dir, "copy.db")
        for _ in range(3):
            main = file_signature(self.path)
            try:
                if main != self._copied_main:
                    shutil.copyfile(self.path, target)
                    self._copied_main = None  # until the copy is known to be whole
                wal = file_signature(self.path + "-wal")
                if main != self._copied_main or wal != self._copied_wal:
                    shutil.copyfile(self.path + "-wal", target + "-wal")
            except OSError as error:
                raise DatabaseProblem(f"cannot copy: {error.strerror or error}", transient=True) from None
            if file_signature(self.path) == main:
                self._copied_main, self._copied_wal = main, wal
                try:  # a wal-index left from the previous copy would describe the wrong WAL
                    os.remove(target + "-shm")
                except FileNotFoundError:
                    pass
                return target
        raise DatabaseProblem("database changing while being copied", transient=True)


class DatabaseRun:
    """One run kept in a database, followed: `read()` queries it when the database changed since.

    A subclass says what to read in `read_rows` and sets `pending` when rows are left for later. A
    lock is waited out silently (the next change or poll tries again); any other problem is one
    note until it goes away.
    """

    def __init__(self, database: ReadOnlyDatabase) -> None:
        self.database = database
        self.mtime: float | None = None
        self.pending = False
        self._signature: object = None
        self._problem: str | None = None

    def read(self, budget_rows: int = ROWS_PER_READ) -> Update | None:
        """What is new since the last call; None when the database did not change."""
        signature = self.database.signature()
        if signature == self._signature and not self.pending:
            return None
        update = Update()
        try:
            with self.database.connect() as connection:
                self.read_rows(connection, update, budget_rows)
        except DatabaseProblem as problem:
            self.pending = False
            if not problem.transient and str(problem) != self._problem:
                self._problem = str(problem)
                update.notes.append(str(problem))
            return update
        self._problem = None
        self._signature = signature
        self.mtime = max((part[2] / 1e9 for part in signature if part), default=None)
        return update

    def read_rows(self, connection: sqlite3.Connection, update: Update, budget_rows: int) -> None:
        raise NotImplementedError


_databases: dict[str, ReadOnlyDatabase] = {}


def database(path: str) -> ReadOnlyDatabase:
    """The shared `ReadOnlyDatabase` of a path, so that every run of one file shares one copy."""
    found = _databases.get(path)
    if found is None:
        if len(_databases) >= _MAX_DATABASES:
            _databases.pop(next(iter(_databases)))
        found = _databases[path] = ReadOnlyDatabase(path)
    return found


def tables(connection: sqlite3.Connection) -> dict[str, set[str]]:
    """Table name -> column names."""
    names = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: {row[1] for row in connection.execute(f'PRAGMA table_info("{_quoted(name)}")')} for name in names}


def _quoted(name: str) -> str:
    return name.replace('"', '""')


def file_signature(path: str) -> tuple[int, int, int] | None:
    """(inode, size, modification time), or None when the file is not there: what changes when it does."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _file_uri(path: str, options: str) -> str:
    return f"{Path(os.path.abspath(path)).as_uri()}?{options}"


def _problem(error: sqlite3.Error) -> DatabaseProblem:
    message = str(error)
    transient = "locked" in message or "busy" in message
    if "not a database" in message or "malformed" in message:
        message = f"not a readable SQLite database ({message})"
    return DatabaseProblem(message, transient=transient)
