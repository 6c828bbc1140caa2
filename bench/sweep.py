"""A sweep as Post-Training Toolkit writes it, for the benchmarks: N DPO runs of S steps under one folder.

    python bench/sweep.py DIR --runs 200 --steps 10000

Each run is `<DIR>/beta<b>-lr<l>-seed<s>/metrics.jsonl`: PTT's header, then one line per step with
its ISO timestamp and 15 metrics (PTT's renamed DPO keys plus what TRL logs beside them), then the
footer. Runs differ in noise and trend; every `LIVE_EVERY`-th has no footer yet (still training).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timedelta, timezone

import numpy as np

KEYS = (
    "reward_mean", "reward_std", "dpo_loss", "win_rate", "reward_margin", "logps_chosen", "logps_rejected",
    "logprobs", "rewards_chosen", "rewards_rejected", "learning_rate", "grad_norm", "kl", "entropy", "epoch",
)
START = datetime(2026, 11, 26, 1, 0, 0, tzinfo=timezone.utc)
LIVE_EVERY = 10


def run_name(index: int) -> str:
    betas = (0.01, 0.05, 0.1, 0.5)
    lrs = ("1e-6", "5e-7", "1e-7")
    return f"beta{betas[index % 4]}-lr{lrs[(index // 4) % 3]}-seed{index // 12:03d}"


def run_lines(index: int, steps: int) -> list[str]:
    rng = np.random.default_rng(index)
    progress = np.arange(1, steps + 1) / steps
    learns = 0.2 + 0.1 * (index % 3)
    columns = {
        "reward_mean": 0.1 * progress + rng.normal(0, 0.05, steps),
        "reward_std": np.abs(rng.normal(0.01, 0.003, steps)),
        "dpo_loss": 0.6931 - learns * progress + rng.normal(0, 0.02, steps),
        "win_rate": np.clip(0.5 + 0.3 * progress + rng.normal(0, 0.08, steps), 0, 1),
        "reward_margin": 1.5 * progress + rng.normal(0, 0.1, steps),
        "logps_chosen": -15 + rng.normal(0, 0.5, steps),
        "logps_rejected": -15.5 + rng.normal(0, 0.5, steps),
        "logprobs": -15 + rng.normal(0, 0.5, steps),
        "rewards_chosen": 0.02 + rng.normal(0, 0.01, steps),
        "rewards_rejected": 0.01 + rng.normal(0, 0.01, steps),
        "learning_rate": np.full(steps, 5e-7),
        "grad_norm": 1.0 + np.abs(rng.normal(0, 0.1, steps)),
        "kl": np.abs(0.05 * progress + rng.normal(0, 0.01, steps)),
        "entropy": 2.0 - 0.1 * progress + rng.normal(0, 0.02, steps),
        "epoch": progress,
    }
    rounded = {key: np.round(values, 9 if key == "learning_rate" else 6).tolist() for key, values in columns.items()}
    header = {"type": "header", "schema_version": "1.0", "run_id": f"sweep-{index}", "trainer_type": "dpo",
              "timestamp": START.isoformat(timespec="microseconds")}
    lines = [json.dumps(header) + "\n"]
    for i in range(steps):
        stamp = (START + timedelta(seconds=2 * i, microseconds=(i * 7919) % 1_000_000)).isoformat(timespec="microseconds")
        metrics = ", ".join(f'"{key}": {rounded[key][i]!r}' for key in KEYS)
        lines.append(f'{{"step": {i + 1}, "timestamp": "{stamp}", "metrics": {{{metrics}}}}}\n')
    if index % LIVE_EVERY:
        footer = {"type": "footer", "run_id": f"sweep-{index}", "status": "completed", "total_steps": steps,
                  "timestamp": stamp}
        lines.append(json.dumps(footer) + "\n")
    return lines


def write_sweep(root: str, runs: int, steps: int) -> list[str]:
    """Write the sweep under `root`; returns the run directories."""
    directories = []
    for index in range(runs):
        directory = os.path.join(root, run_name(index))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "metrics.jsonl"), "w") as handle:
            handle.writelines(run_lines(index, steps))
        directories.append(directory)
    return directories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    write_sweep(args.root, args.runs, args.steps)


if __name__ == "__main__":
    main()
