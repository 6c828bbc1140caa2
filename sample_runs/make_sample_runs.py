"""Regenerate the simulated runs in sample_runs/ (the real TRL runs beside them are copies, not made here).

    python sample_runs/make_sample_runs.py [OUT_DIR]

The metric streams come from `rlhf_tui.simulate` (fixed seeds), the files from the writers of
`rlhf_tui.demo`, the clock readings are fixed: running it again gives the same bytes. Each run
directory it makes is replaced; nothing else in OUT_DIR (default: this folder) is touched.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import sys
from datetime import datetime, timezone

from rlhf_tui.core.records import Record
from rlhf_tui.demo.plans import CHECKPOINTS, CONSOLE, PTT, RLHF_TOP, Death, RunPlan, simulated_plan
from rlhf_tui.demo.tracebacks import cuda_oom_traceback
from rlhf_tui.demo.writer import write_run
from rlhf_tui.simulate import logged_precision

HERE = os.path.dirname(os.path.abspath(__file__))
LOAD_SECONDS = 40.0  # from the start of training (headers written) to the first logged step


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=timezone.utc).timestamp()


def starting_at(plan: RunPlan, first_step: float) -> RunPlan:
    """The plan with its records' times moved so that the first one is logged at `first_step`."""
    offset = first_step - plan.records[0].time
    records = tuple(record._replace(time=record.time + offset) for record in plan.records)
    return dataclasses.replace(plan, records=records)


# --- the run that reproduces the example of the RLHF Run Diagnostic Report (PTT's) ------------
#
# A minimal DPO demo on a laptop: 15 logged steps with the loss parked at ln 2 (learning rate far too
# low), then the evaluation at step 15 dies when tqdm writes to a stdout pipe that wandb's console
# capture finds broken. Post-Training Toolkit's files only. Reward accuracy over batches of 4 pairs
# averages 61.7% and ends at 75%; step 1 is exactly 0 (the policy is still the reference).

EXAMPLE_WIN_RATES = (0.0, 0.75, 0.5, 1.0, 0.25, 0.75, 0.5, 1.0, 0.75, 0.25, 0.5, 1.0, 0.75, 0.5, 0.75)
EXAMPLE_CRASH = datetime(2025, 12, 17, 19, 26, 4, 880887, tzinfo=timezone.utc).timestamp()
EXAMPLE_SITE = "/home/ml/.venv/lib/python3.11/site-packages"
EXAMPLE_SCRIPT = "/home/ml/post-training-toolkit/demo/scripts/minimal_dpo_demo.py"
BROKEN_PIPE = (
    "Traceback (most recent call last):\n"
    f'  File "{EXAMPLE_SCRIPT}", line 201, in <module>\n'
    "    main()\n"
    f'  File "{EXAMPLE_SCRIPT}", line 168, in main\n'
    "    trainer.train()\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 2325, in train\n'
    "    return inner_training_loop(\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 2756, in _inner_training_loop\n'
    "    self._maybe_log_save_evaluate(\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 3221, in _maybe_log_save_evaluate\n'
    "    metrics = self._evaluate(trial, ignore_keys_for_eval)\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 3170, in _evaluate\n'
    "    metrics = self.evaluate(ignore_keys=ignore_keys_for_eval)\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 4513, in evaluate\n'
    "    self.log(output.metrics)\n"
    f'  File "{EXAMPLE_SITE}/trl/trainer/dpo_trainer.py", line 1995, in log\n'
    "    return super().log(logs, start_time)\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer.py", line 3793, in log\n'
    "    self.control = self.callback_handler.on_log(self.args, self.state, self.control, logs)\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer_callback.py", line 549, in on_log\n'
    '    return self.call_event("on_log", args, state, control, logs=logs)\n'
    f'  File "{EXAMPLE_SITE}/transformers/trainer_callback.py", line 556, in call_event\n'
    "    result = getattr(callback, event)(\n"
    f'  File "{EXAMPLE_SITE}/transformers/trainer_callback.py", line 693, in on_log\n'
    "    self.training_bar.write(str(shallow_logs))\n"
    f'  File "{EXAMPLE_SITE}/tqdm/std.py", line 720, in write\n'
    "    with cls.external_write_mode(file=file, nolock=nolock):\n"
    '  File "/usr/lib/python3.11/contextlib.py", line 137, in __enter__\n'
    "    return next(self.gen)\n"
    f'  File "{EXAMPLE_SITE}/tqdm/std.py", line 745, in external_write_mode\n'
    "    inst.clear(nolock=True)\n"
    f'  File "{EXAMPLE_SITE}/tqdm/std.py", line 1319, in clear\n'
    "    self.sp('')\n"
    f'  File "{EXAMPLE_SITE}/tqdm/std.py", line 459, in print_status\n'
    "    fp_write('\\r' + s + (' ' * max(last_len[0] - len_s, 0)))\n"
    f'  File "{EXAMPLE_SITE}/tqdm/std.py", line 452, in fp_write\n'
    "    fp.write(str(s))\n"
    f'  File "{EXAMPLE_SITE}/tqdm/utils.py", line 196, in inner\n'
    "    return func(*args, **kwargs)\n"
    f'  File "{EXAMPLE_SITE}/wandb/sdk/lib/console_capture.py", line 171, in write_with_callbacks\n'
    "    n = orig_write(s)\n"
    "BrokenPipeError: [Errno 32] Broken pipe\n"
)


def report_example_plan() -> RunPlan:
    noise = random.Random(15)
    beta = 0.1
    first_step = EXAMPLE_CRASH - 0.9 - 14 * 0.046
    records = []
    for step, win_rate in enumerate(EXAMPLE_WIN_RATES, start=1):
        # Margins of a few 1e-5 whose sign follows the batch's accuracy: the policy has barely moved.
        margin = 0.0 if step == 1 else (win_rate - 0.5 + noise.gauss(0, 0.1)) * 4e-5
        chosen = 0.0 if step == 1 else margin * 0.6 + noise.gauss(0, 5e-6)
        logps_chosen = noise.uniform(-170, -80)
        values = {
            "loss": math.log1p(math.exp(-margin)),
            "grad_norm": noise.uniform(20, 60),
            "learning_rate": 5e-7 * (1 - (step - 1) / 30),
            "rewards/chosen": chosen,
            "rewards/rejected": chosen - margin,
            "rewards/accuracies": win_rate,
            "rewards/margins": margin,
            "logps/chosen": logps_chosen + chosen / beta,
            "logps/rejected": logps_chosen + noise.uniform(30, 110) + (chosen - margin) / beta,
            "logits/chosen": noise.uniform(-1.5, -0.5),
            "logits/rejected": noise.uniform(-1.5, -0.5),
            "epoch": round(step / 30, 6),
        }
        logged = dict(zip(values, logged_precision(list(values.values())).tolist()))
        records.append(Record(step, first_step + (step - 1) * 0.046 + noise.uniform(-0.004, 0.004), logged))
    config = {
        "max_steps": -1,  # trained by epochs, so the arguments give no step count
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 5e-7,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 15,
        "beta": beta,
        "loss_type": "sigmoid",
        "bf16": False,
        "fp16": False,
        "report_to": "wandb",
    }
    return RunPlan(
        "dpo_broken_pipe",
        "dpo",
        tuple(records),
        config,
        (PTT,),
        stops_after=15,
        death=Death("exception", BROKEN_PIPE),
        ptt_dir="",
        model="Qwen/Qwen2.5-0.5B",
    )


# --- simulated runs ---------------------------------------------------------------------------

GRPO_FRAMES = (
    '  File "{site}/transformers/trainer.py", line 2675, in training_step\n'
    "    loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/grpo_trainer.py", line 2107, in compute_loss\n'
    "    return self._compute_loss(model, inputs)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/grpo_trainer.py", line 2151, in _compute_loss\n'
    "    per_token_logps, entropies = self._get_per_token_logps_and_entropies(\n"
    "                                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/grpo_trainer.py", line 1012, in _get_per_token_logps_and_entropies\n'
    "    logits = model(**model_inputs).logits\n"
    "             ^^^^^^^^^^^^^^^^^^^^^\n"
)


def simulated_runs() -> list[tuple[RunPlan, float]]:
    """(plan, the time of its first logged step): the simulated sample runs."""
    return [
        (
            simulated_plan("dpo_healthy", "dpo", "healthy", 80, 11, (CONSOLE, PTT, CHECKPOINTS), save_steps=80),
            utc(2026, 11, 2, 9, 14, 7),
        ),
        (
            simulated_plan(
                "grpo_reward_variance_collapse", "grpo", "variance_collapse", 60, 12, (RLHF_TOP,)
            ),
            utc(2026, 11, 3, 22, 41, 30),
        ),
        (simulated_plan("ppo_kl_runaway", "ppo", "kl_runaway", 100, 13, (RLHF_TOP,)), utc(2026, 11, 5, 3, 2, 51)),
        (
            simulated_plan("kto_healthy", "kto", "healthy", 60, 14, (CONSOLE, CHECKPOINTS), save_steps=60),
            utc(2026, 11, 6, 14, 20, 12),
        ),
        (simulated_plan("sft_nan_loss", "sft", "nan_loss", 80, 15, (CONSOLE, PTT)), utc(2026, 11, 9, 11, 5, 44)),
        (
            simulated_plan(
                "grpo_cuda_oom",
                "grpo",
                "healthy",
                100,
                16,
                (CONSOLE, CHECKPOINTS),
                save_steps=25,
                stops_after=37,
                death=Death("oom", cuda_oom_traceback("/home/ml/recipes/train_grpo.py", GRPO_FRAMES)),
            ),
            utc(2026, 11, 12, 1, 37, 9),
        ),
        (
            simulated_plan("dpo_killed", "dpo", "healthy", 200, 20, (RLHF_TOP,), stops_after=70),
            utc(2026, 11, 16, 19, 58, 23),
        ),
    ]


def main(argv: list[str]) -> int:
    out = argv[0] if argv else HERE
    example = report_example_plan()
    runs = [(example, example.records[0].time - 0.1, EXAMPLE_CRASH)]
    for plan, first_step in simulated_runs():
        runs.append((starting_at(plan, first_step), first_step - LOAD_SECONDS, None))
    for plan, started, ended in runs:
        run_dir = os.path.join(out, plan.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        write_run(run_dir, plan, started, ended)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
