"""Print a run's main numbers from its metrics.jsonl (a helper for writing labels.yaml by hand).

    python bench/corpus/summarize.py tests/fixtures/corpus/dpo_lr0 [more runs] [--keys loss,grad_norm]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

DEFAULT_KEYS = ["loss", "grad_norm", "learning_rate", "rewards/accuracies", "rewards/margins", "rewards/chosen",
                "reward", "reward_std", "frac_reward_zero_std", "kl", "entropy", "completions/clipped_ratio",
                "objective/kl", "objective/scores", "objective/entropy", "accuracy", "margin", "eval_loss", "nll_loss"]


def records(run: Path):
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "step" in record:
            yield record


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--keys")
    parser.add_argument("--rows", type=int, default=12)
    options = parser.parse_args()
    for run in [r for r in options.runs if r.is_dir()]:
        rows = list(records(run))
        train = [r for r in rows if r.get("phase") != "eval"]
        evals = [r for r in rows if r.get("phase") == "eval"]
        present = set().union(*(r["metrics"] for r in train)) if train else set()
        keys = options.keys.split(",") if options.keys else [k for k in DEFAULT_KEYS if k in present]
        print(f"== {run.name}: {len(train)} train records, last step {train[-1]['step'] if train else None}, "
              f"{len(evals)} evals")
        stride = max(1, len(train) // options.rows)
        picked = train[::stride] + ([train[-1]] if train and train[-1] is not train[::stride][-1] else [])
        print("step    " + " ".join(f"{k[-12:]:>12s}" for k in keys))
        for r in picked:
            print(f"{r['step']:<7d} " + " ".join(f"{fmt(r['metrics'].get(k)):>12s}" for k in keys))
        if evals:
            print("eval: " + ", ".join(f"{r['step']}:{fmt(r['metrics'].get('eval_loss'))}" for r in evals))


if __name__ == "__main__":
    main()
