"""A run's history read off the live path: what a big metrics log already holds when it is found.

When a sweep is opened, each run's `metrics.jsonl` may hold tens of thousands of lines. Reading them
one pass at a time on the monitor's thread would keep every other run waiting, so a file found with
more than HISTORY_MIN_BYTES is split at its size then: the bytes before are its history, read in
worker processes (one per core), the bytes after are followed live, in-process, as any file is.

- `read_tail` reads the header and the last TAIL_BYTES of such a file: enough for the table row
  (step, last values, sparklines, status) while the history loads. What it yields is provisional
  (the run model keeps it apart and the history replaces it whole).
- `read_history` runs in a worker: it opens the file read-only, checks it is still the file that
  was found, feeds exactly its history to a fresh reader and returns that reader's Update (long
  regular stretches as numpy columns, `Block`s) and the reader itself, which goes on with the live
  bytes. Only plain data crosses between processes: a path in, arrays and plain objects out,
  pickled by the pool between our own processes; nothing read from disk is unpickled.
- `Histories` queues them: newest runs first, a run someone is looking at before all others, at
  most a few per worker in flight so that a new priority takes effect at once.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from multiprocessing import forkserver
from bisect import insort
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from rlhf_tui.core.records import Update
from rlhf_tui.core.sources.jsonl import JsonlReader
from rlhf_tui.core.sources.ptt import PttMetricsReader

HISTORY_MIN_BYTES = 256 * 1024  # smaller files are read in-process at once
# Less history than this in all is read in-process too, a file at a time: starting worker processes
# costs more than they save (`rlhf-top report` on one long run, a handful of runs).
POOL_MIN_BYTES = 24 * 1024 * 1024
TAIL_BYTES = 64 * 1024  # about 150 PTT lines: the table row, its sparklines and status
HEAD_BYTES = 4096  # where a header line usually ends
HEADER_MAX_BYTES = 1024 * 1024  # as long as a line may be (sources/lines.py)
CHUNK_BYTES = 8 * 1024 * 1024  # what a worker feeds its reader at a time
IN_FLIGHT_PER_WORKER = 2
# Kinds whose lines each carry their step, so their tail can be read alone.
READERS: dict[str, Callable[[str], Any]] = {"metrics": PttMetricsReader, "jsonl": JsonlReader}


@dataclass(frozen=True)
class Job:
    """The history of one file: its first `size` bytes, as long as it is still the file `identity`."""

    path: str
    kind: str
    size: int
    identity: tuple[int, int]
    mtime: float


@dataclass
class History:
    job: Job
    update: Update | None  # None: the file was replaced or shrank meanwhile; read it from the start
    reader: Any = None


def read_history(job: Job) -> History:
    """Read a file's history (in a worker process)."""
    reader = READERS[job.kind](os.path.basename(job.path))
    update = Update()
    try:
        with open(job.path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if (st.st_dev, st.st_ino) != job.identity or st.st_size < job.size:
                return History(job, None)
            left = job.size
            while left > 0:
                data = handle.read(min(CHUNK_BYTES, left))
                if not data:
                    return History(job, None)
                left -= len(data)
                update.merge(reader.feed(data))
                if reader.not_metrics:  # a data set, say: the reader takes nothing more from it
                    break
    except OSError:
        return History(job, None)
    return History(job, update, reader)


def _read_or_give_up(job: Job) -> History:
    """read_history in this process; a reader bug means the file is read the ordinary way."""
    try:
        return read_history(job)
    except Exception:  # noqa: BLE001 - as a worker's failure is taken
        return History(job, None)


def read_tail(job: Job) -> Update:
    """The header and last lines of a file's history, through a reader of their own: provisional."""
    reader = READERS[job.kind](os.path.basename(job.path))
    try:
        with open(job.path, "rb") as handle:
            head = handle.read(min(HEAD_BYTES, job.size))
            if b"\n" not in head and len(head) < job.size:  # a long header (a whole config in it)
                head += handle.read(min(HEADER_MAX_BYTES, job.size) - len(head))
            start = max(0, job.size - TAIL_BYTES)
            handle.seek(start)
            tail = handle.read(job.size - start)
    except OSError:
        return Update()
    update = Update()
    header_end = head.find(b"\n")
    if 0 <= header_end < start:
        update.merge(reader.feed(head[: header_end + 1]))
    cut = tail.find(b"\n") + 1  # the tail starts within a line
    if cut:
        update.merge(reader.feed(tail[cut:]))
    return update


class Histories:
    """Histories waiting, being read and read; `workers` 0 reads them in the caller's thread."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: list[Job] = []
        self._running: dict[Future, Job] = {}
        self._first: tuple[str, ...] = ()  # run directories whose files go before all others
        self.total_bytes = 0
        self.done_bytes = 0

    def __len__(self) -> int:
        return len(self._waiting) + len(self._running)

    def add(self, job: Job) -> None:
        insort(self._waiting, job, key=_age)  # oldest first: the newest is popped from the end
        self.total_bytes += job.size

    def cancel(self, path: str) -> None:
        for job in [job for job in self._waiting if job.path == path]:
            self._waiting.remove(job)
            self.done_bytes += job.size
        for future, job in list(self._running.items()):
            if job.path == path:
                future.cancel()

    def prefer(self, run_paths: Iterable[str]) -> None:
        """Read the histories of the files in these run directories next (the run on screen); any thread."""
        self._first = tuple(path.rstrip(os.sep) + os.sep for path in run_paths)

    def take(self, timeout: float = 0.0) -> list[History]:
        """The histories read since the last call, waiting up to `timeout` s for one."""
        if not self.workers or (self._pool is None and not self._running and self._waiting_bytes() < POOL_MIN_BYTES):
            job = self._next()
            return [] if job is None else [self._done(_read_or_give_up(job))]
        self._start_jobs()
        if not self._running:
            return []
        finished, _ = wait(list(self._running), timeout=timeout, return_when=FIRST_COMPLETED)
        results = []
        for future in finished:
            job = self._running.pop(future)
            if future.cancelled():
                self.done_bytes += job.size
                continue
            try:
                results.append(self._done(future.result()))
            except BrokenProcessPool:  # workers cannot start here (or were killed)
                self._without_workers(job)
            except Exception:  # noqa: BLE001 - a reader bug: that file is read the ordinary way
                results.append(self._done(History(job, None)))
        self._start_jobs()
        if not self._running:
            self.close()  # all read: no idle worker processes sit on their memory (a new big log starts them again)
        return results

    def _without_workers(self, job: Job) -> None:
        """From now on read every history in-process, this job among them."""
        self.add(job)
        self.total_bytes -= job.size
        self.close()
        self.workers = 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _waiting_bytes(self) -> int:
        return sum(job.size for job in self._waiting)

    def _done(self, history: History) -> History:
        self.done_bytes += history.job.size
        return history

    def _next(self) -> Job | None:
        if not self._waiting:
            return None
        first = self._first
        for index in range(len(self._waiting) - 1, -1, -1) if first else ():
            if self._waiting[index].path.startswith(first):
                return self._waiting.pop(index)
        return self._waiting.pop()

    def _start_jobs(self) -> None:
        while len(self._running) < self.workers * IN_FLIGHT_PER_WORKER:
            job = self._next()
            if job is None:
                return
            try:
                self._running[self._executor().submit(read_history, job)] = job
            except Exception:  # noqa: BLE001 - no worker processes here, whatever the reason
                self._without_workers(job)
                return

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=start_fork_server())
        return self._pool


def start_fork_server() -> multiprocessing.context.BaseContext:
    """The context workers start in: not fork (the TUI has threads by now) but a fork server that
    imported this module and forks each worker ready to parse. A program that replaces its standard
    error (Textual does) calls this first: the server is started with the real one."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    forkserver.ensure_running()
    return context


def _age(job: Job) -> float:
    return job.mtime


def default_workers() -> int:
    """One worker process per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
