"""LLaMA-Factory's `trainer_log.jsonl`, which its `LogCallback` appends to the output dir at every log.

As LLaMA-Factory writes it (`src/llamafactory/train/callbacks.py`, `LogCallback.on_log`): one JSON
object per line, `{"current_steps", "total_steps", "loss", "eval_loss", "predict_loss", "reward",
"accuracy", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"}` plus `throughput` and
`total_tokens` when tokens are counted; keys whose value is None are left out, so an evaluation's
line has `eval_loss` and no `loss`. `accuracy` is TRL's `rewards/accuracies` (DPO, KTO, ORPO),
`reward` the PPO reward. Its v1 trainer (`v1/utils/callbacks/logging_callback.py`) writes the
trainer's own log dict with `step` and `total_steps` instead. During a predict-only run the lines
carry progress only, and are skipped.
"""

from __future__ import annotations

from typing import Any

from rlhf_tui.core.config import whole_number
from rlhf_tui.core.records import NoteBudget, Record, Update
from rlhf_tui.core.sources.jsonl import parse_json_line
from rlhf_tui.core.sources.lines import LineBuffer

NOT_METRICS = frozenset({"current_steps", "step", "total_steps", "percentage", "elapsed_time", "remaining_time"})
SKIPPED = frozenset({"predict_loss"})


class LlamaFactoryReader:
    """Feed it the bytes appended to `trainer_log.jsonl`, split anywhere."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._lines = LineBuffer()
        self._line_number = 0
        self._notes = NoteBudget("further bad lines not reported")

    def feed(self, data: bytes) -> Update:
        update = Update()
        dropped = self._lines.dropped
        for line in self._lines.feed(data):
            self._line_number += 1
            if not line.strip():
                continue
            try:
                obj = parse_json_line(line)
            except (ValueError, RecursionError):
                self._note(update, f"line {self._line_number}: not valid JSON, skipped")
                continue
            if not isinstance(obj, dict):
                self._note(update, f"line {self._line_number}: not a JSON object, skipped")
                continue
            self._line(obj, update)
        if self._lines.dropped > dropped:
            self._note(update, "a line longer than 1 MiB was skipped")
        return update

    def _line(self, obj: dict[str, Any], update: Update) -> None:
        step = obj.get("current_steps", obj.get("step"))
        if type(step) is not int:
            self._note(update, f"line {self._line_number}: no step, skipped")
            return
        values = {
            key: value
            for key, value in obj.items()
            if key not in NOT_METRICS and key not in SKIPPED and type(value) in (int, float)
        }
        if not values:
            return
        update.facts["writer"] = "llama-factory"
        total = whole_number(obj.get("total_steps"))
        if total is not None:
            update.facts["max_steps"] = total
            if step >= total:
                update.finished = True
        evals = {key[5:]: value for key, value in values.items() if key.startswith("eval_")}
        train = {key: value for key, value in values.items() if not key.startswith("eval_")}
        if evals:
            if "epoch" in train:
                evals["epoch"] = train["epoch"]
            update.records.append(Record(step, None, evals, "eval"))
        if len(train) > ("epoch" in train) or not evals:
            update.records.append(Record(step, None, train))

    def _note(self, update: Update, text: str) -> None:
        self._notes.add(update.notes, text)
