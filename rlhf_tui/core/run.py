"""The run model: one run directory, however many artefacts describe it.

Each artefact file feeds a logical source (all TensorBoard files of a run are one source, all console
logs another, ...). Every source keeps its own column-wise series; the run shows the richest one
(the "primary": the highest-ranked source that is not lagging behind), so steps are never counted
twice and a checkpoint's lagging `trainer_state.json` never hides the live log. Facts and lifecycle
evidence (finished, crashed) are merged from all sources.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhf_tui.core.metrics import infer_trainer, may_carry_a_role, resolve_roles, trainer_label
from rlhf_tui.core.records import EVAL_PREFIX, Block, Crash, Entry, Record, Update
from rlhf_tui.core.series import Series, StepAxis

if TYPE_CHECKING:
    from rlhf_tui.core.history import Job

# Which logical source a run shows when several are equally current (higher wins).
SOURCE_RANK = {
    "rlhf-top": 60,
    "wandb": 56,  # trackers keep every key at full precision; TensorBoard rounds to float32
    "mlflow": 55,
    "trackio": 54,
    "tensorboard": 50,
    "console": 40,
    "trainer_state": 35,
    "ptt": 30,
    "llamafactory": 25,
    "jsonl": 20,
}
TRAINER_EVIDENCE_RANK = {"keys": 0, "training args": 1, "model card": 2, "header": 3, "config class": 4}
STALL_MIN_SECONDS = 180.0
STALL_INTERVALS = 15
KILLED_GRACE_SECONDS = 30.0
# Quiet this long with no live process known, a run has stopped rather than stalled: an old sweep
# copied from a cluster, logs without a footer. A hung job is still "stalled" the morning after.
STOPPED_AFTER_SECONDS = 24 * 3600.0
MAX_NOTES = 100
# A key no role is read from (charted only when someone asks for it) keeps at most twice this many
# points, each bucket's min and max: memory grows with the number of runs, not with their length.
DECIMATED_POINTS = 512


_BULK_MIN = 16
_STEP_MIN, _STEP_MAX = -(2**62), 2**62  # steps are stored as int64; anything beyond is corrupt
_INT_AS_FLOAT_MAX = 2**1023
_INT_AS_FLOAT_MIN = -_INT_AS_FLOAT_MAX
_NUMBERS = frozenset((int, float))
_STEP, _TIME, _VALUES, _PHASE = (itemgetter(i) for i in range(4))


@dataclass
class _Batch:
    """What one `SourceData.add` call collected before writing it into the series."""

    columns: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    time_steps: list[int] = field(default_factory=list)
    time_values: list[float] = field(default_factory=list)
    new_steps: int = 0
    newest_time: float | None = None
    grown: set[str] = field(default_factory=set)  # keys that got points


class SourceData:
    """The step records of one logical source, stored column-wise per raw key."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.series: dict[str, Series] = {}
        self._axis = StepAxis()
        self.times = Series(self._axis)
        self.last_step: int | None = None
        self.records = 0
        self._last_by_key: dict[str, int] = {}

    def add(self, records: list[Entry], decimate: bool = True) -> tuple[int, float | None, int | None]:
        """Append records; a key's step at or before its last stored step is ignored.

        Returns (new train steps, newest record time, the step a rewind went back to, if any).
        Blocks, and stretches of train records with the same keys and rising steps (the usual
        backlog), are appended column-wise in one go; everything else goes record by record.
        With `decimate`, a key that may carry no role is decimated past 2 x DECIMATED_POINTS.
        """
        batch = _Batch()
        rewound_to = None
        pending: list[Record] = []
        for entry in records:
            if not isinstance(entry, Block):
                pending.append(entry)
                continue
            if pending:
                rewound_to = self._add_rows(pending, batch, rewound_to)
                pending = []
            if self._append_block(entry, batch):
                self.records += len(entry.steps)
            else:
                rewound_to = self._add_rows(entry.rows(), batch, rewound_to)
        if pending:
            rewound_to = self._add_rows(pending, batch, rewound_to)
        self._flush(batch)
        if decimate:
            for key in batch.grown:
                series = self.series[key]
                if len(series) > 2 * DECIMATED_POINTS and not may_carry_a_role(key):
                    series.decimate(DECIMATED_POINTS)
        return batch.new_steps, batch.newest_time, rewound_to

    def _add_rows(self, records: list[Record], batch: _Batch, rewound_to: int | None) -> int | None:
        records = [r for r in records if _STEP_MIN <= r.step <= _STEP_MAX]
        count = len(records)
        if count < _BULK_MIN or not self._append_stretch(records, batch):
            i = 0
            while i < count:
                end = max(self._uniform_stretch(records, i), i + 1)
                if end - i >= _BULK_MIN and self._append_stretch(records[i:end], batch):
                    i = end
                    continue
                for record in records[i:end]:
                    if record.phase == "train" and self.last_step is not None and record.step < self.last_step:
                        rewound_to = record.step if rewound_to is None else rewound_to
                    self._append_one(record, batch)
                i = end
        self.records += count
        return rewound_to

    @staticmethod
    def _uniform_stretch(records: list[Record], start: int) -> int:
        first = records[start]
        if first.phase != "train":
            return start
        keys = first.values.keys()
        previous = first.step
        end = start + 1
        count = len(records)
        while end < count:
            record = records[end]
            if record.step <= previous or record.phase != "train" or record.values.keys() != keys:
                break
            previous = record.step
            end += 1
        return end

    def _append_stretch(self, stretch: list[Record], batch: _Batch) -> bool:
        """Append train records with one key set and rising steps column-wise; False if they aren't."""
        count = len(stretch)
        if set(map(_PHASE, stretch)) != {"train"}:
            return False
        steps = np.fromiter(map(_STEP, stretch), dtype=np.int64, count=count)
        first_step = int(steps[0])
        if self.last_step is not None and first_step <= self.last_step:
            return False
        if count > 1 and not bool((np.diff(steps) > 0).all()):
            return False
        values = list(map(_VALUES, stretch))
        keys = tuple(values[0])
        last_by_key = self._last_by_key
        if set(map(len, values)) != {len(keys)}:
            return False
        if any(last_by_key.get(key, first_step - 1) >= first_step for key in keys):
            return False
        kinds = set(map(type, chain.from_iterable(map(dict.values, values))))
        if not _NUMBERS.issuperset(kinds):
            return False  # None, text, bools or nested values: the careful way drops them
        try:
            columns = [np.fromiter(map(itemgetter(key), values), np.float64, count) for key in keys]
        except (KeyError, OverflowError):
            return False  # other keys, or ints too large for a float
        if int in kinds and any(bool((np.abs(column) > _INT_AS_FLOAT_MAX).any()) for column in columns):
            return False  # ints the careful way drops, or floats as large: it tells them apart
        self._append_columns(steps, keys, columns, np.array(list(map(_TIME, stretch)), dtype=np.float64), batch)
        return True

    def _append_block(self, block: Block, batch: _Batch) -> bool:
        """Append a block column-wise, as `_append_stretch` would its records; False if it can't."""
        steps = block.steps
        first_step = int(steps[0])
        if self.last_step is not None and first_step <= self.last_step:
            return False
        if any(self._last_by_key.get(key, first_step - 1) >= first_step for key in block.keys):
            return False
        self._append_columns(steps, block.keys, block.values.T, block.times, batch)
        return True

    def _append_columns(self, steps: np.ndarray, keys: Sequence[str], columns: Iterable[np.ndarray], times: np.ndarray, batch: _Batch) -> None:
        self._flush(batch)
        last_by_key = self._last_by_key
        for key, column in zip(keys, columns):
            self._series(key).extend(steps, column)
            last_by_key[key] = int(steps[-1])
        batch.grown.update(keys)
        timed = np.isfinite(times)
        if timed.any():
            self.times.extend(steps[timed], times[timed])
            batch.newest_time = float(times[timed][-1])
        self.last_step = int(steps[-1])
        batch.new_steps += len(steps)

    def _append_one(self, record: Record, batch: _Batch) -> None:
        step, when, values, phase = record
        prefix = ""
        if phase == "train":
            if self.last_step is None or step > self.last_step:
                self.last_step = step
                batch.new_steps += 1
                if when is not None:
                    batch.time_steps.append(step)
                    batch.time_values.append(when)
                    batch.newest_time = when
        else:
            prefix = EVAL_PREFIX
        last_by_key = self._last_by_key
        for key, value in values.items():
            kind = type(value)
            if kind is not float and (kind is not int or not _INT_AS_FLOAT_MIN <= value <= _INT_AS_FLOAT_MAX):
                continue
            if prefix:
                key = prefix + key
            previous = last_by_key.get(key)
            if previous is not None and step <= previous:
                continue
            last_by_key[key] = step
            column = batch.columns.get(key)
            if column is None:
                column = batch.columns[key] = ([], [])
            column[0].append(step)
            column[1].append(value)

    def _flush(self, batch: _Batch) -> None:
        for key, (steps, values) in batch.columns.items():
            if len(steps) == 1:  # a live step: one point for each key
                self._series(key).append(steps[0], values[0])
            else:
                self._series(key).extend(np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64))
        batch.grown.update(batch.columns)
        batch.columns.clear()
        if batch.time_steps:
            self.times.extend(np.array(batch.time_steps, dtype=np.int64), np.array(batch.time_values))
            batch.time_steps.clear()
            batch.time_values.clear()

    def _series(self, key: str) -> Series:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series(self._axis)
        return series

    def points(self) -> int:
        return sum(len(s) for s in self.series.values())

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.series.values()) + self.times.nbytes() + self._axis.buffer.nbytes


@dataclass
class SourceFile:
    """One artefact file of a run and what its reader last said."""

    path: str
    kind: str
    logical: str | None  # the SourceData it feeds, None for documents that only give facts
    reader: Any = None
    follower: Any = None  # FileTail, WholeFile or a tracker store
    finished: bool = False
    crash: Crash | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    missing: bool = False
    bytes_read: int = 0
    history: Job | None = None  # its history is being read off the live path; what it shows is provisional


class Run:
    """Everything known about one run directory."""

    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root
        relative = os.path.relpath(path, root)
        self.name = os.path.basename(root.rstrip(os.sep)) if relative == "." else relative
        self.files: dict[str, SourceFile] = {}
        self.data: dict[str, SourceData] = {}
        self.facts: dict[str, Any] = {}
        self.primary: str | None = None
        self.generation = 0
        self.roles: dict[str, str] = {}
        self._resolved_keys = -1
        self.notes: deque[str] = deque(maxlen=MAX_NOTES)
        self.gone = False
        self._newest_record_time: float | None = None
        self._newest_file_time: float | None = None
        self.changed_at = time.monotonic()
        self.version = 0  # bumps on every change a view may want to redraw
        self.process_alive: bool | None = None
        self.full_resolution = False  # it is on screen: no key of it is decimated meanwhile
        self._interval_key: tuple[str | None, int] | None = None
        self._interval: float | None = None

    # --- what views and rules read ---------------------------------------------------------

    @property
    def trainer(self) -> str:
        trainer = self.facts.get("trainer")
        if trainer and trainer != "unknown":
            return trainer
        source = self.data.get(self.primary) if self.primary else None
        return infer_trainer(source.series) if source else "unknown"

    @property
    def trainer_label(self) -> str:
        return trainer_label(self.trainer)

    @property
    def source(self) -> SourceData | None:
        return self.data.get(self.primary) if self.primary else None

    def keys(self) -> list[str]:
        source = self.source
        return sorted(source.series) if source else []

    def series(self, key: str) -> Series | None:
        source = self.source
        return source.series.get(key) if source else None

    def role(self, role: str) -> Series | None:
        key = self.roles.get(role)
        return self.series(key) if key else None

    def role_key(self, role: str) -> str | None:
        return self.roles.get(role)

    @property
    def times(self) -> Series:
        source = self.source
        return source.times if source else Series()

    @property
    def last_step(self) -> int | None:
        source = self.source
        return source.last_step if source else None

    @property
    def max_steps(self) -> int | None:
        value = self.facts.get("max_steps")
        return value if type(value) is int and value > 0 else None

    @property
    def crash(self) -> Crash | None:
        """The most telling crash evidence: a specific cause beats a generic exception."""
        crashes = [f.crash for f in self.files.values() if f.crash is not None]
        if not crashes:
            return None
        best = max(crashes, key=_crash_weight)
        if best.traceback is None:
            with_traceback = [c for c in crashes if c.traceback]
            if with_traceback:
                other = with_traceback[0]
                best = Crash(
                    best.reason,
                    best.label,
                    best.exception or other.exception,
                    other.traceback,
                    best.last_step if best.last_step is not None else other.last_step,
                    best.time or other.time,
                    best.source,
                )
        return best

    @property
    def finished(self) -> bool:
        return any(f.finished for f in self.files.values())

    @property
    def loading(self) -> bool:
        """Part of its history is still being read: what it shows is its tail (history.py)."""
        return any(f.history is not None for f in self.files.values())

    def step_interval(self) -> float | None:
        """Median seconds per logged step over the recent past (cached until new steps arrive)."""
        times = self.times
        key = (self.primary, len(times))
        if key != self._interval_key:
            self._interval_key = key
            self._interval = self._median_interval(times)
        return self._interval

    @staticmethod
    def _median_interval(times: Series) -> float | None:
        if len(times) < 3:
            return None
        recent = times.values[-50:]
        steps = times.steps[-50:]
        deltas = np.diff(recent) / np.maximum(np.diff(steps), 1)
        deltas = deltas[np.isfinite(deltas) & (deltas >= 0)]
        return float(np.median(deltas)) if deltas.size else None

    def stall_after(self) -> float:
        interval = self.step_interval()
        return max(STALL_MIN_SECONDS, STALL_INTERVALS * interval) if interval else STALL_MIN_SECONDS

    @property
    def last_data_time(self) -> float | None:
        """When the newest step was logged: its own timestamp, else when its file last changed.

        Sources with timestamps win over file times: a copied or re-saved checkpoint has a new
        mtime but old steps.
        """
        if self._newest_record_time is not None:
            return self._newest_record_time
        return self._newest_file_time

    def quiet_for(self, now: float | None = None) -> float | None:
        if self.last_data_time is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_data_time)

    def lifecycle(self, now: float | None = None) -> str:
        """running, finished, crashed, killed (its process is gone), stalled (quiet for longer than
        its steps take, up to a day, or for any time with its process alive), stopped (quiet for a
        day or more with no end marker and no live process known), or gone (deleted)."""
        if self.gone:
            return "gone"
        if self.crash is not None:
            return "crashed"
        if self.finished:
            return "finished"
        quiet = self.quiet_for(now)
        if self.process_alive is False and (quiet is None or quiet > KILLED_GRACE_SECONDS):
            return "killed"
        if quiet is not None and quiet > self.stall_after():
            return "stopped" if quiet >= STOPPED_AFTER_SECONDS and not self.process_alive else "stalled"
        return "running"

    def points(self) -> int:
        return sum(d.points() for d in self.data.values())

    def nbytes(self) -> int:
        return sum(d.nbytes() for d in self.data.values())

    # --- how the monitor feeds it ----------------------------------------------------------

    def note(self, text: str) -> None:
        if not self.notes or self.notes[-1] != text:
            self.notes.append(text)
            self.touch()

    def touch(self) -> None:
        self.version += 1
        self.changed_at = time.monotonic()

    def apply(self, file: SourceFile, update: Update, file_time: float | None = None) -> None:
        """Merge one reader update from one of this run's files."""
        label = os.path.relpath(file.path, self.path)
        for text in update.notes:
            self.note(f"{label}: {text}")
        changed = bool(update.notes)
        if update.facts:
            if update.replace:
                file.facts = dict(update.facts)
            else:
                file.facts.update(update.facts)
            self.merge_facts()
            changed = True
        if "resumed_at" in update.facts:  # first: what the update ends in (its finished, crash) is later
            file.finished = False
            file.crash = None
        if update.finished and not file.finished:
            file.finished = True
            changed = True
        if update.crash is not None:
            file.crash = update.crash
            changed = True
        if file.logical is not None and (update.records or update.replace):
            changed |= self._add_records(file, update, file_time)
        if changed:
            self.touch()

    def _add_records(self, file: SourceFile, update: Update, file_time: float | None) -> bool:
        logical = file.logical
        assert logical is not None  # documents that only give facts have no records to add
        data = self.data.get(logical)
        if data is None or update.replace:
            if data is not None and logical == self.primary:
                self.generation += 1
            data = self.data[logical] = SourceData(logical)
        new_steps, newest_time, rewound_to = data.add(update.records, decimate=not self.full_resolution)
        if rewound_to is not None:
            self.note(
                f"{os.path.relpath(file.path, self.path)}: steps went back to {rewound_to} "
                f"(resumed or restarted); only steps after {data.last_step} are shown"
            )
        if new_steps:
            if newest_time is not None:
                self._newest_record_time = max(newest_time, self._newest_record_time or newest_time)
            elif file_time is not None:
                self._newest_file_time = max(file_time, self._newest_file_time or file_time)
            self._clear_crashes_before(data.last_step)
        self.choose_primary()
        return bool(update.records) or update.replace

    def _clear_crashes_before(self, step: int | None) -> None:
        """Training that logged steps past a crash's last step went on: that crash is over."""
        if step is None:
            return
        for file in self.files.values():
            crash = file.crash
            if crash is not None and crash.last_step is not None and step > crash.last_step:
                if file.logical is not None:
                    file.crash = None

    def choose_primary(self) -> None:
        """The highest-ranked source that is current (within a small lag of the newest step)."""
        last_steps = {d.kind: d.last_step for d in self.data.values() if d.last_step is not None}
        if not last_steps:
            return
        newest = max(last_steps.values())
        tolerance = 2 + max(newest, 0) // 50
        current = [self.data[kind] for kind, step in last_steps.items() if step >= newest - tolerance]
        best = max(current, key=lambda d: SOURCE_RANK.get(d.kind, 0))
        if best.kind != self.primary:
            self.primary = best.kind
            self.generation += 1
            self._resolved_keys = -1
        source = self.data[self.primary]
        if len(source.series) != self._resolved_keys:
            roles = resolve_roles(self.trainer, source.series)
            if roles != self.roles and self._resolved_keys >= 0:
                self.generation += 1
            self.roles = roles
            self._resolved_keys = len(source.series)

    def merge_facts(self) -> None:
        facts: dict[str, Any] = {}
        evidence_rank = -1
        for file in sorted(self.files.values(), key=lambda f: SOURCE_RANK.get(f.logical or "", 0)):
            for key, value in file.facts.items():
                if value is None:
                    continue
                if key == "trainer":
                    rank = TRAINER_EVIDENCE_RANK.get(file.facts.get("trainer_evidence", "keys"), 0)
                    if rank < evidence_rank:
                        continue
                    evidence_rank = rank
                    facts["trainer_evidence"] = file.facts.get("trainer_evidence", "keys")
                elif key == "trainer_evidence":
                    continue
                elif key == "config" and isinstance(value, dict):
                    value = {**facts.get("config", {}), **value}  # every source adds its keys
                facts[key] = value
        if facts.get("trainer") != self.facts.get("trainer"):
            self._resolved_keys = -1
        self.facts = facts
        if self.primary:
            self.choose_primary()

    def check_process(self, probe: ProcessProbe | None = None) -> None:
        """Is the training process still alive? `probe` (pid, host) answers, by default by asking
        this host's kernel."""
        pid = self.facts.get("pid")
        host = self.facts.get("host")
        if type(pid) is not int or not isinstance(host, str):
            alive = None
        else:
            alive = (probe or process_alive)(pid, host)
        if alive != self.process_alive:
            self.process_alive = alive
            self.touch()


_HOSTNAME = socket.gethostname()

ProcessProbe = Callable[[int, str], "bool | None"]


def process_alive(pid: int, host: str) -> bool | None:
    """Whether process `pid` runs; only answerable on the host that ran it (None elsewhere)."""
    if host != _HOSTNAME:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True

_CRASH_SPECIFICITY = {"exception": 0, "killed": 1}


def _crash_weight(crash: Crash) -> tuple[int, int]:
    return (_CRASH_SPECIFICITY.get(crash.reason, 2), 1 if crash.traceback else 0)
