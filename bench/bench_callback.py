"""What RunLogger costs the training loop: on_log calls per second with realistic TRL log dicts.

    python bench/bench_callback.py [--calls 20000]

Each `on_log` writes one flushed line into a temporary run directory, as in training. Side by side,
on the same dicts: `json.dumps` alone, and `json.dumps` + write + flush on a plain file (the floor
for any writer that lets a live monitor see every record). The budget is under 1 ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from transformers import TrainerControl, TrainerState, TrainingArguments

from rlhf_tui.integrations.trl import RunLogger

# Keys and magnitudes as TRL 1.16 logs them (see tests/test_integration_trl.py runs).
DPO_LOGS = {
    "loss": 0.6931020617485046,
    "grad_norm": 1.1114592552185059,
    "learning_rate": 6.666666666666666e-07,
    "entropy": 3.038541078567505,
    "num_tokens": 116.0,
    "logits/chosen": 0.004660051316022873,
    "logits/rejected": -0.0009975938592106104,
    "mean_token_accuracy": 0.0,
    "rewards/chosen": 4.6205521357478574e-05,
    "rewards/rejected": -4.401207115733996e-05,
    "rewards/accuracies": 1.0,
    "rewards/margins": 9.021758887683973e-05,
    "logps/chosen": -15.403868675231934,
    "logps/rejected": -11.937734603881836,
    "epoch": 0.5,
}
GRPO_LOGS = {
    "loss": -0.14057523012161255,
    "grad_norm": 1.3167821168899536,
    "learning_rate": 6.666666666666666e-07,
    "num_tokens": 77.0,
    "completions/mean_length": 6.75,
    "completions/min_length": 5.0,
    "completions/max_length": 8.0,
    "completions/clipped_ratio": 0.5,
    "completions/mean_terminated_length": 5.5,
    "completions/min_terminated_length": 5.0,
    "completions/max_terminated_length": 6.0,
    "rewards/reward/mean": 18.5,
    "rewards/reward/std": 6.191391944885254,
    "reward": 18.5,
    "reward_std": 6.191391944885254,
    "frac_reward_zero_std": 0.0,
    "entropy": 3.039396047592163,
    "clip_ratio/low_mean": 0.0,
    "clip_ratio/high_mean": 0.0,
    "clip_ratio/region_mean": 0.0,
    "clip_ratio/low_min": 0.0,
    "clip_ratio/high_max": 0.0,
    "step_time": 0.06517205600005127,
    "epoch": 0.125,
}


def seconds_for(calls: int, function) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for step in range(1, calls + 1):
            function(step)
        best = min(best, time.perf_counter() - start)
    return best


def run_logger_seconds(directory: str, logs: dict, calls: int) -> float:
    args = TrainingArguments(output_dir=os.path.join(directory, "out"), report_to="none")
    logger = RunLogger(os.path.join(directory, "run"))
    state = TrainerState(max_steps=calls)
    control = TrainerControl()
    logger.on_train_begin(args, state, control)

    def log(step: int) -> None:
        state.global_step = step
        logger.on_log(args, state, control, logs=logs)

    try:
        return seconds_for(calls, log)
    finally:
        logger.on_train_end(args, state, control)


def write_flush_seconds(directory: str, logs: dict, calls: int) -> float:
    with open(os.path.join(directory, "plain.jsonl"), "w", encoding="utf-8") as file:

        def write(step: int) -> None:
            file.write(json.dumps({"step": step, "metrics": logs}) + "\n")
            file.flush()

        return seconds_for(calls, write)


def dumps_seconds(logs: dict, calls: int) -> float:
    return seconds_for(calls, lambda step: json.dumps({"step": step, "metrics": logs}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    print(f"{'log dict':<16}{'what':<28}{'us/call':>10}{'calls/s':>12}")
    for name, logs in (("DPO (15 keys)", DPO_LOGS), ("GRPO (24 keys)", GRPO_LOGS)):
        with tempfile.TemporaryDirectory() as directory:
            rows = (
                ("json.dumps", dumps_seconds(logs, calls)),
                ("dumps + write + flush", write_flush_seconds(directory, logs, calls)),
                ("RunLogger.on_log", run_logger_seconds(directory, logs, calls)),
            )
        for what, seconds in rows:
            print(f"{name:<16}{what:<28}{seconds / calls * 1e6:>10.1f}{calls / seconds:>12,.0f}")


if __name__ == "__main__":
    main()
