"""transformers' `checkpoint-N/trainer_state.json`: the log history as of the last save.

It lags the live run (written only at checkpoints) but carries `max_steps`, which tells a finished
run (`global_step == max_steps`) from one that stopped early, and raw TRL keys at full precision.
"""

from __future__ import annotations

import re

from rlhf_tui.core.metrics import SUMMARY_KEYS
from rlhf_tui.core.records import Record, Update, split_eval
from rlhf_tui.core.sources.jsonl import numeric_values, parse_json_line

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def read_trainer_state(data: bytes, name: str = "trainer_state.json") -> Update:
    update = Update(replace=True)
    try:
        state = parse_json_line(data)
    except (ValueError, RecursionError):
        update.notes.append(f"{name}: not valid JSON")
        return update
    if not isinstance(state, dict):
        update.notes.append(f"{name}: not a JSON object")
        return update
    facts = update.facts
    for key in ("max_steps", "global_step", "logging_steps"):
        value = state.get(key)
        if type(value) is int and value > 0:
            facts[key] = value
    history = state.get("log_history")
    if not isinstance(history, list):
        update.notes.append(f"{name}: no log_history")
        return update
    for entry in history:
        if not isinstance(entry, dict):
            continue
        step = entry.get("step")
        if type(step) is not int:
            continue
        values = numeric_values(entry, skip=("step",))
        if SUMMARY_KEYS & values.keys():
            facts["summary"] = {k: float(v) for k, v in values.items() if k != "epoch"}
            continue
        train_values, eval_values = split_eval(values)
        if eval_values:
            update.records.append(Record(step, None, eval_values, "eval"))
        if len(train_values) > (1 if "epoch" in train_values else 0):
            update.records.append(Record(step, None, train_values, "train"))
    max_steps = facts.get("max_steps")
    if max_steps and facts.get("global_step") == max_steps:
        update.finished = True
    return update


def checkpoint_number(dirname: str) -> int | None:
    match = CHECKPOINT_DIR.match(dirname)
    return int(match.group(1)) if match else None
