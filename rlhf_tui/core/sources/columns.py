"""Regular JSONL lines read straight into columns: a backlog without a dict per line.

Metric logs repeat one shape line after line: PTT's `{"step", "timestamp", "metrics": {...}}` or a
flat `{"step", "loss", ...}` with the same keys. Once the careful reader (jsonl.py) has parsed one
such line, `shape_of` makes a msgspec decoder typed for exactly that shape: every key required, no
other key allowed, every metric a JSON number. Lines that decode with it become one `Block`; the first
line that does not (a footer, a new key, a `NaN` token, text where a number was) ends the block and
goes the careful way. So a block holds exactly the records the careful reader would have made, with
ints already as floats, which is how the run model stores them anyway.

The typed decoder skips building a dict per line and its values come out as one float matrix, which
makes reading a PTT log about twice as fast as `orjson.loads` per line (bench/bench_ingest.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Callable, NamedTuple

import msgspec
import numpy as np

from rlhf_tui.core.records import Block
from rlhf_tui.core.sources.timestamps import parse_times

BLOCK_MIN = 64  # fewer regular lines than this are not worth a block
_MAX_SHAPES = 256
_HUGE = 2.0**1023  # the run model drops ints beyond this; a float column could not tell them from floats
_STEP_MIN, _STEP_MAX = -(2**62), 2**62  # as the run model keeps them
_STEP = attrgetter("step")
_TIME = attrgetter("time")
_METRICS = attrgetter("metrics")
_astuple = msgspec.structs.astuple


class Shape(NamedTuple):
    """One regular line shape and the decoder typed for it."""

    nested: bool  # PTT's {"step", "timestamp", "metrics": {...}}, else flat {"step", key: number, ...}
    keys: tuple[str, ...]  # the metric keys, in the order of the block's columns
    time_key: str | None  # the flat shape's time field, if it has one
    time_is_text: bool
    decode: Callable[[bytes], Any]


_shapes: dict[tuple, Shape | None] = {}


def shape_of(obj: dict[str, Any], time_keys: Sequence[str]) -> Shape | None:
    """The regular shape of a parsed line the careful reader took as a train record, if it has one."""
    step = obj.get("step")
    if type(step) is not int:
        return None
    metrics = obj.get("metrics")
    if type(metrics) is dict:
        if len(obj) != 3 or type(obj.get("timestamp")) is not str:
            return None
        return _cached(True, tuple(metrics), "timestamp", True, metrics.values())
    if "type" in obj or "data" in obj:
        return None
    time_key = next((key for key in time_keys if key in obj), None)
    keys = tuple(key for key in obj if key != "step" and key != time_key)
    time_is_text = time_key is not None and type(obj[time_key]) is str
    if time_key is not None and not time_is_text and type(obj[time_key]) not in (int, float):
        return None
    return _cached(False, keys, time_key, time_is_text, [obj[key] for key in keys])


def _cached(nested: bool, keys: tuple[str, ...], time_key: str | None, time_is_text: bool, values: Any) -> Shape | None:
    if not keys or any(type(value) not in (int, float) for value in values):
        return None
    signature = (nested, keys, time_key, time_is_text)
    if signature not in _shapes:
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        _shapes[signature] = Shape(nested, keys, time_key, time_is_text, _decoder(nested, keys, time_key, time_is_text))
    return _shapes[signature]


def _decoder(nested: bool, keys: tuple[str, ...], time_key: str | None, time_is_text: bool) -> Callable[[bytes], Any]:
    # Field names are made up (keys are any text); `rename` maps them to the keys.
    metric_fields: list[Any] = [(f"m{i}", float) for i in range(len(keys))]
    names = {f"m{i}": key for i, key in enumerate(keys)}
    if nested:
        metrics = msgspec.defstruct("Metrics", metric_fields, rename=names, forbid_unknown_fields=True, gc=False)
        line = msgspec.defstruct(
            "Line", [("step", int), ("time", str), ("metrics", metrics)], rename={"time": "timestamp"}, forbid_unknown_fields=True, gc=False
        )
    else:
        fields = metric_fields + [("step", int)]
        if time_key is not None:
            fields.append(("time", str if time_is_text else float))
            names["time"] = time_key
        line = msgspec.defstruct("Line", fields, rename=names, forbid_unknown_fields=True, gc=False)
    return msgspec.json.Decoder(line).decode


def read_block(shape: Shape, lines: list[bytes], start: int) -> tuple[Block | None, int]:
    """Decode lines from `start` on while they have `shape` and their steps rise; the block and how
    many lines it took, or (None, 0) when fewer than BLOCK_MIN lines would make it."""
    decode = shape.decode
    decoded: list[Any] = []
    append = decoded.append
    previous = _STEP_MIN - 1
    for line in lines[start:] if start else lines:
        try:
            record = decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            break
        step = record.step
        if step <= previous or step > _STEP_MAX:
            break
        previous = step
        append(record)
    count = len(decoded)
    if count < BLOCK_MIN:
        return None, 0
    width = len(shape.keys)
    rows: Iterable[tuple[Any, ...]]
    if shape.nested:
        rows = map(_astuple, map(_METRICS, decoded))
    else:  # the metrics are the first fields, then the step and the time
        rows = (values[:width] for values in map(_astuple, decoded))
    values = np.fromiter(chain.from_iterable(rows), np.float64, count * width).reshape(count, width)
    with np.errstate(invalid="ignore"):
        huge = (np.abs(values) >= _HUGE).any(axis=1)
    if huge.any():  # maybe an int the careful reader would drop: those lines go its way
        count = int(np.argmax(huge))
        if count < BLOCK_MIN:
            return None, 0
        decoded, values = decoded[:count], values[:count]
    steps = np.fromiter(map(_STEP, decoded), np.int64, count)
    return Block(steps, _times(shape, decoded), shape.keys, values), count


def _times(shape: Shape, decoded: list[Any]) -> np.ndarray:
    if shape.time_key is None:
        return np.full(len(decoded), np.nan)
    if not shape.time_is_text:
        times = np.fromiter(map(_TIME, decoded), np.float64, len(decoded))
        return np.where(np.isfinite(times), times, np.nan)
    return parse_times(list(map(_TIME, decoded)))
