"""Generic JSONL metrics: one JSON object per line with a step and numeric values.

Accepted shapes: flat `{"step": 3, "loss": 0.5, ...}` (custom loops), `{"step": 3, "data": {...}}`
(verl's file logger) and `{"step": 3, "metrics": {...}}` (PTT-style records without a header).
`NaN`/`Infinity` tokens are accepted. Values are handed on as parsed: the run model keeps numbers and drops the rest.
A file whose first object has no step is not a metrics log
(a dataset, say): the reader marks itself `not_metrics` and ignores the rest.

A long stretch of lines shaped like the train record before them is read as columns (columns.py).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from rlhf_tui.core.records import NoteBudget, Record, Update, split_eval
from rlhf_tui.core.sources.columns import BLOCK_MIN, Shape, read_block, shape_of
from rlhf_tui.core.sources.lines import LineBuffer
from rlhf_tui.core.sources.timestamps import parse_time

STEP_KEYS = ("step", "global_step", "_step", "iteration", "iter")
TIME_KEYS = ("timestamp", "time", "wall_time", "_timestamp", "_time")
NESTED_KEYS = ("metrics", "data")
_new_record = tuple.__new__  # a NamedTuple without its Python-level __new__: this loop is hot


_decode = msgspec.json.Decoder().decode
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)


def parse_json_line(line: bytes) -> Any:
    """msgspec, falling back to json for the NaN/Infinity tokens Python's json writes."""
    try:
        return _decode(line)
    except _DECODE_ERRORS:
        return json.loads(line)


def numeric_values(source: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The numeric fields of a dict (bools and strings dropped), one nested level flattened."""
    values: dict[str, float] = {}
    for key, value in source.items():
        kind = type(value)
        if kind is float or kind is int:
            if key not in skip:
                values[key] = value
        elif kind is dict and key not in skip:
            for inner, inner_value in value.items():
                if type(inner_value) in (float, int):
                    values[f"{key}/{inner}"] = inner_value
    return values


def step_of(obj: dict[str, Any]) -> int | None:
    for key in STEP_KEYS:
        value = obj.get(key)
        if type(value) is int:
            return value
        if type(value) is float and value.is_integer():
            return int(value)
    return None


def _pop_time(obj: dict[str, Any]) -> float | None:
    for key in TIME_KEYS:
        if key in obj:
            return parse_time(obj.pop(key))
    return None


def time_of(obj: dict[str, Any]) -> float | None:
    for key in TIME_KEYS:
        if key in obj:
            return parse_time(obj[key])
    return None


class JsonlReader:
    """Reads JSONL metric logs incrementally; subclasses handle control lines (headers, footers)."""

    writer = "jsonl"

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._lines = LineBuffer()
        self._line_number = 0
        self._notes = NoteBudget("further bad lines not reported")
        self.not_metrics = False
        self.seen_records = False

    def feed(self, data: bytes) -> Update:
        update = Update()
        if self.not_metrics:
            return update
        records = update.records
        dropped_before = self._lines.dropped
        lines = self._lines.feed(data)
        shape: Shape | None = None  # the shape of the train record just read, if lines may follow it
        count = len(lines)
        i = 0
        retry_at = 0  # after a try that made no block, the next waits this long: never more than 2x the work
        while i < count:
            if shape is not None and i >= retry_at:
                block, taken = read_block(shape, lines, i)
                if block is not None:
                    records.append(block)
                    self._line_number += taken
                    i += taken
                    continue
                retry_at = i + BLOCK_MIN
            shape = None
            line = lines[i]
            i += 1
            self._line_number += 1
            try:
                obj = _decode(line)
            except _DECODE_ERRORS:
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    self._note(update, f"line {self._line_number}: not valid JSON, skipped")
                    continue
            if type(obj) is not dict:
                self._note(update, f"line {self._line_number}: not a JSON object, skipped")
                continue
            # the two common shapes skip the general lookups of `handle`
            step = obj.get("step")
            if type(step) is int:
                metrics = obj.get("metrics")
                if type(metrics) is dict:
                    if len(obj) == 3 and "timestamp" in obj:
                        if count - i >= BLOCK_MIN:
                            shape = shape_of(obj, TIME_KEYS)
                        records.append(_new_record(Record, (step, parse_time(obj["timestamp"]), metrics, "train")))
                        continue
                elif "type" not in obj and "data" not in obj:
                    if count - i >= BLOCK_MIN:
                        shape = shape_of(obj, TIME_KEYS)
                    del obj["step"]
                    records.append(_new_record(Record, (step, _pop_time(obj), obj, "train")))
                    continue
            self.handle(obj, update)
            if self.not_metrics:
                return Update()
        if records:
            self.seen_records = True
        if self._lines.dropped > dropped_before:
            self._note(update, "a line longer than 1 MiB was skipped")
        return update

    def _note(self, update: Update, text: str) -> None:
        self._notes.add(update.notes, text)

    def handle(self, obj: dict[str, Any], update: Update) -> None:
        step = step_of(obj)
        if step is None:
            if not self.seen_records and not update.records:
                self.not_metrics = True
            else:
                self._note(update, f"line {self._line_number}: no step, skipped")
            return
        self.seen_records = True
        values = None
        for nested in NESTED_KEYS:
            inner = obj.get(nested)
            if type(inner) is dict:
                values = inner
                break
        if values is None:
            values = numeric_values(obj, skip=STEP_KEYS + TIME_KEYS)
        if obj.get("phase") == "eval":
            train_values, eval_values = split_eval(values)
            values = {**train_values, **eval_values}  # a writer's own eval_ prefix is not doubled
            update.records.append(Record(step, time_of(obj), values, "eval"))
        else:
            update.records.append(Record(step, time_of(obj), values, "train"))
