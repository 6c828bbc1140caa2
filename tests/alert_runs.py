"""Runs that something happens to, for the alert tests: PTT-format logs written into tmp dirs."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

from rlhf_tui.core import runlog

LN2 = math.log(2)


def _stamp(when: float) -> str:
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat()


def write_run(directory: Path, steps: list[dict], t0: float, first: int = 1, header: bool = True, footer: bool = False) -> Path:
    """Append steps `first`, `first + 1`, ... one second apart from `t0` to directory/metrics.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [runlog.header("dpo", directory.name, _stamp(t0))] if header else []
    lines += [runlog.step(first + i, _stamp(t0 + i), m) for i, m in enumerate(steps)]
    if footer:
        last = first + len(steps) - 1
        lines.append(runlog.footer(directory.name, last, _stamp(t0 + len(steps))))
    path = directory / runlog.METRICS_FILE
    with path.open("a") as file:
        file.write("".join(map(runlog.line, lines)))
    return path


def learning(count: int, start: int = 0) -> list[dict]:
    """A DPO run that learns: loss falling from ln 2, accuracy and margin rising."""
    return [
        {"dpo_loss": LN2 - 0.004 * (start + i), "win_rate": 0.6, "reward_margin": 0.05 + 0.01 * (start + i)}
        for i in range(count)
    ]


def parked(count: int) -> list[dict]:
    """A DPO run whose policy never moves: the loss at ln 2, no margin (learning rate 0)."""
    return [{"dpo_loss": round(LN2, 6), "win_rate": 0.0, "reward_margin": 0.0} for _ in range(count)]


def crash(directory: Path, last_step: int, host: str, exception: str) -> None:
    """What PTT leaves when training dies of an exception."""
    postmortem = {
        "exit_reason": "exception",
        "last_step": last_step,
        "traceback": f'Traceback (most recent call last):\n  File "train.py", line 9, in <module>\n{exception}\n',
        "environment": {"hostname": host},
    }
    (directory / runlog.POSTMORTEM_FILE).write_text(json.dumps(postmortem))


def message_fields(message: dict) -> dict[str, str]:
    """A message's body as {field: value}: "run: x" lines."""
    return dict(line.split(": ", 1) for line in message["message"].splitlines())
