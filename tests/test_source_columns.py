"""A backlog read in blocks (columns.py) stores exactly what the same lines read one at a time store.

Fed line by line, the JSONL readers never make a block (too few lines a feed), so that is the careful
reading; fed in one piece, long regular stretches become blocks. The run model must end up with the
same series, times, steps and notes either way, whatever irregular lines interrupt the stretches.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.core.records import Block
from rlhf_tui.core.run import SourceData
from rlhf_tui.core.sources.columns import BLOCK_MIN
from rlhf_tui.core.sources.jsonl import JsonlReader
from rlhf_tui.core.sources.ptt import PttMetricsReader
from rlhf_tui.core.sources.timestamps import parse_time, parse_times

KEYS = ("loss", "rewards/chosen", "kl")


def stamp(second: int, micro: int) -> str:
    return f"2026-11-26T01:{(second // 60) % 60:02d}:{second % 60:02d}.{micro:06d}+00:00"


ODDITIES = (
    "nan_token", "bool", "int", "huge_int", "missing_key", "extra_key", "rewind", "same_step", "text_value",
    "blank", "not_json", "eval", "summary_row", "footer", "z_time", "number_time", "bad_time",
)


@st.composite
def logs(draw, nested: bool) -> list[str]:
    """A PTT-shaped (nested) or flat metrics log: regular lines with oddities among them."""
    count = draw(st.integers(BLOCK_MIN - 5, 3 * BLOCK_MIN))
    odd_at = draw(st.dictionaries(st.integers(0, count - 1), st.sampled_from(ODDITIES), max_size=6))
    values = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=len(KEYS), max_size=len(KEYS)))
    lines = []
    step = 0
    for i in range(count):
        step += 1
        metrics = {key: values[k] + i for k, key in enumerate(KEYS)}
        when: object = stamp(2 * i, (i * 7919) % 1_000_000)
        odd = odd_at.get(i)
        if odd == "rewind":
            step = max(1, step - 10)
        elif odd == "same_step":
            step -= 1
        elif odd == "bool":
            metrics["kl"] = True
        elif odd == "int":
            metrics["kl"] = 7
        elif odd == "huge_int":
            metrics["kl"] = 10**308
        elif odd == "missing_key":
            del metrics["kl"]
        elif odd == "extra_key":
            metrics["entropy"] = 1.5
        elif odd == "text_value":
            metrics["kl"] = "n/a"
        elif odd == "z_time":
            when = "2026-11-26T01:02:03.5Z"
        elif odd == "number_time":
            when = 1.7e9 + i
        elif odd == "bad_time":
            when = "2026-11-26T01:02:0x.000000+00:00"
        if odd == "blank":
            lines.append("")
            continue
        if odd == "not_json":
            lines.append('{"step": 3, "metrics": ')
            continue
        if odd == "footer":
            lines.append(json.dumps({"type": "footer", "status": "completed"}))
            continue
        if odd == "summary_row":
            lines.append(json.dumps({"step": step - 1, "timestamp": when, "metrics": {"loss": 0.5}}))
            continue
        if nested:
            line = {"step": step, "timestamp": when, "metrics": metrics}
            if odd == "eval":
                line["phase"] = "eval"
        else:
            line = {"step": step, "timestamp": when, **metrics}
            if odd == "eval":
                line = {"step": step, "eval_loss": 0.3}
        text = json.dumps(line)
        if odd == "nan_token":
            text = text.replace(json.dumps(metrics["loss"]), "NaN", 1)
        lines.append(text)
    return lines


def stored(reader_type, feeds: list[bytes]) -> tuple[dict, list, int | None, int, list[str], dict, bool]:
    reader = reader_type("metrics.jsonl")
    data = SourceData("jsonl")
    notes: list[str] = []
    facts: dict = {}
    blocks = False
    for chunk in feeds:
        update = reader.feed(chunk)
        blocks |= any(type(entry) is Block for entry in update.records)
        data.add(update.records)
        notes += update.notes
        facts.update(update.facts)
    series = {key: (s.steps.tolist(), s.values.tolist()) for key, s in data.series.items()}
    times = (data.times.steps.tolist(), data.times.values.tolist())
    return series, times, data.last_step, data.records, notes, facts, blocks


def same(a, b) -> bool:
    """Equal, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=examples(150), deadline=None)
@given(st.booleans().flatmap(lambda nested: st.tuples(st.just(nested), logs(nested))))
def test_blocks_store_what_line_by_line_reading_stores(case):
    nested, lines = case
    text = "".join(line + "\n" for line in lines).encode()
    for reader_type in (PttMetricsReader, JsonlReader) if nested else (JsonlReader,):
        header = b'{"type": "header", "trainer_type": "dpo"}\n' if reader_type is PttMetricsReader else b""
        whole = stored(reader_type, [header + text])
        one_by_one = stored(reader_type, [header] + [line + b"\n" for line in text.split(b"\n")[:-1]])
        assert not one_by_one[-1]
        assert same(whole[:-1], one_by_one[:-1])


def test_a_regular_log_is_read_as_one_block():
    lines = [json.dumps({"step": i, "timestamp": stamp(i, i), "metrics": {"loss": 1.0 / i, "kl": i}}) for i in range(1, 1001)]
    update = PttMetricsReader().feed("".join(line + "\n" for line in lines).encode())
    (first, block) = update.records
    assert first.step == 1 and type(block) is Block
    assert block.steps.tolist() == list(range(2, 1001)) and block.keys == ("loss", "kl")
    assert block.values[:, 1].tolist() == [float(i) for i in range(2, 1001)]


def test_bulk_timestamps_are_parse_time_of_each():
    stamps = [stamp(s, (s * 104729) % 1_000_000) for s in range(0, 7200, 7)]
    assert parse_times(stamps).tolist() == [parse_time(s) for s in stamps]
    odd = stamps[:5] + ["2026-11-26T01:02:03Z", "yesterday", "2026-13-26T01:02:03.000000+00:00"]
    expected = [parse_time(s) for s in odd]
    assert same(parse_times(odd).tolist(), [math.nan if t is None else t for t in expected])
    assert np.isnan(parse_times(["2026-13-26T01:02:03.000000+00:00"] * 3)).all()


def test_a_summary_row_at_the_start_of_a_regular_stretch_is_still_the_summary():
    """PTT repeats a step with the run-average `<x>_loss` alone; a one-key log can go on after it (resumed)."""
    steps = list(range(1, 101)) + [100] + list(range(101, 201))
    lines = [json.dumps({"step": s, "timestamp": stamp(i, 0), "metrics": {"sft_loss": 2.0 + i}}) for i, s in enumerate(steps)]
    text = "".join(line + "\n" for line in lines).encode()
    whole = stored(PttMetricsReader, [text])
    one_by_one = stored(PttMetricsReader, [line.encode() + b"\n" for line in lines])
    assert whole[-1] and same(whole[:-1], one_by_one[:-1])
    assert whole[5] == {"summary": {"train_loss": 102.0}}
