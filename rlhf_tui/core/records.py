"""What a source reader hands to the run model.

Every reader, whatever its format, turns bytes into an `Update`: step records with their raw metric
keys, facts about the run (trainer, max_steps, ...), lifecycle evidence (finished, crashed) and notes
about bad input. The run model merges updates from all the sources of one run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union

import numpy as np


EVAL_PREFIX = "eval_"


class Record(NamedTuple):
    """One logged step: raw metric keys as the trainer wrote them, NaN/Inf kept.

    Readers may pass values on as parsed; the run model keeps ints and floats and drops the rest.
    An eval record's keys come without the `eval_` prefix trainers log them with (`split_eval`):
    the run model stores them as `eval_<key>`.
    """

    step: int
    time: float | None
    values: dict[str, float]
    phase: str = "train"  # "train" or "eval"; eval keys are kept apart as eval_<key>


class Block(NamedTuple):
    """Consecutive train records with one set of keys and rising steps, as columns: what a backlog
    mostly is, read without a dict per line. It stands for the records `rows()` gives, in order."""

    steps: np.ndarray  # int64, strictly rising
    times: np.ndarray  # float64, NaN where a record has no time
    keys: tuple[str, ...]
    values: np.ndarray  # float64, one row per step, one column per key

    def rows(self) -> list[Record]:
        times = [None if time != time else time for time in self.times.tolist()]
        return [
            Record(step, time, dict(zip(self.keys, row)))
            for step, time, row in zip(self.steps.tolist(), times, self.values.tolist())
        ]


Entry = Union[Record, Block]


def rows(entries: list[Entry]) -> list[Record]:
    """The records that `entries` stand for, blocks written out."""
    out: list[Record] = []
    for entry in entries:
        if isinstance(entry, Block):
            out.extend(entry.rows())
        else:
            out.append(entry)
    return out


def split_eval(values: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """A logged dict as (train values, eval values without their `eval_` prefix); the epoch goes
    with the eval values too when there are any."""
    train = {key: value for key, value in values.items() if not key.startswith(EVAL_PREFIX)}
    evaluation = {key[len(EVAL_PREFIX) :]: value for key, value in values.items() if key.startswith(EVAL_PREFIX)}
    if evaluation and "epoch" in values:
        evaluation["epoch"] = values["epoch"]
    return train, evaluation


@dataclass
class Crash:
    """How a run ended abnormally.

    reason: a short machine word, one of CRASH_REASONS.
    label: what a person reads ("CUDA out of memory", "NCCL watchdog timeout").
    exception: the final exception line ("RuntimeError: boom"), when there is one.
    """

    reason: str
    label: str
    exception: str | None = None
    traceback: str | None = None
    last_step: int | None = None
    time: float | None = None
    source: str = ""


CRASH_REASONS = (
    "exception",
    "oom",
    "nccl",
    "child_failed",
    "sigterm",
    "sigint",
    "sigkill",
    "time_limit",
    "preempted",
    "segfault",
    "killed",
)


@dataclass
class Update:
    """The result of one read of one source.

    records: new step records, in file order; a long regular stretch may come as one `Block`.
    facts: run facts learnt (keys in FACT_KEYS); later updates override earlier ones.
    finished: True when the source saw a normal end (footer, final summary, global_step == max_steps).
    crash: set when the source saw an abnormal end.
    notes: short, human-readable complaints about bad input ("line 12: not JSON"), shown on the run.
    replace: True for snapshot sources (a whole file re-read): their records replace the previous ones.
    """

    records: list[Entry] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    crash: Crash | None = None
    notes: list[str] = field(default_factory=list)
    replace: bool = False

    def merge(self, other: Update) -> None:
        """Append a later update of the same source: what it ends in wins."""
        self.records.extend(other.records)
        self.facts.update(other.facts)
        if "resumed_at" in other.facts:  # the run trained again after whatever ended it before
            self.finished, self.crash = other.finished, other.crash
        else:
            self.finished = self.finished or other.finished
            self.crash = other.crash or self.crash
        self.notes.extend(other.notes)


READER_NOTES = 20  # notes about bad input one reader makes, at most


class NoteBudget:
    """A reader's notes about bad input: the first `limit`, then one saying that later ones are not.

    A corrupt file can have a problem on every line; the run shows the first few, not a flood."""

    def __init__(self, more: str, limit: int = READER_NOTES) -> None:
        self.more = more
        self.limit = limit
        self.count = 0

    def add(self, notes: list[str], text: str) -> None:
        self.count += 1
        if self.count <= self.limit:
            notes.append(text)
        elif self.count == self.limit + 1:
            notes.append(self.more)


class TrackerRun(NamedTuple):
    """A run kept in a tracker's store (a Trackio or MLflow database, a W&B run dir), as discovery
    sees it: enough to name it and to find the trainer output dir it belongs to."""

    key: str  # the run's id in its store
    name: str  # "project/run name"
    output_dir: str | None  # the trainer's `output_dir` from the run's config, as logged


# Facts a reader may report. trainer is a name from metrics.TRAINERS.
FACT_KEYS = (
    "trainer",  # "dpo", "grpo", ... as named by the source
    "trainer_evidence",  # where it came from: "config class", "header", "model card", "training args", "keys"
    "max_steps",
    "global_step",
    "logging_steps",
    "model_name",
    "loss_type",  # DPO loss variant: sigmoid, hinge, ipo, ...; KTO, ...
    "beta",
    "config",  # dict of scalar training arguments
    "pid",
    "host",
    "start_time",  # unix seconds
    "end_time",
    "summary",  # the end-of-run summary dict (train_runtime, train_loss, ...), never a step
    "writer",  # "ptt", "rlhf-top", "transformers", "tensorboard", "console", "jsonl", "wandb", ...
    "resumed_at",  # a resume marker: the run is training again from this step
    "project",  # a tracker's project (W&B, Trackio) or experiment (MLflow)
    "run_name",  # the run's name in its tracker
)
