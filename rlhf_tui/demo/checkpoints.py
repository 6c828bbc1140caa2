"""`checkpoint-N/trainer_state.json` and the model card TRL writes at every save."""

from __future__ import annotations

import math
import os

from rlhf_tui.core.metrics import trainer_label
from rlhf_tui.demo.files import replace_file, write_document
from rlhf_tui.demo.plans import VERSIONS, RunPlan


_MODEL_CARD = """---
base_model: {model}
library_name: transformers
model_name: {name}
tags:
- generated_from_trainer
- {trainer}
- trl
licence: license
---

# Model Card for {name}

This model is a fine-tuned version of [{model}](https://huggingface.co/{model}).
It has been trained using [TRL](https://github.com/huggingface/trl).

## Training procedure

This model was trained with {label}.

### Framework versions

- TRL: {trl}
- Transformers: {transformers}
- Pytorch: {torch}
"""


def write_checkpoint(run_dir: str, plan: RunPlan, step: int, history: list[dict[str, float]]) -> None:
    """What a save leaves that rlhf-top reads: `checkpoint-N/trainer_state.json` and the model card."""
    checkpoint = os.path.join(run_dir, f"checkpoint-{step}")
    os.makedirs(checkpoint, exist_ok=True)
    epoch = next((entry["epoch"] for entry in reversed(history) if "epoch" in entry), 0.0)
    state = {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": epoch,
        "eval_steps": plan.config.get("eval_steps", 500),
        "global_step": step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": 1,
        "max_steps": plan.max_steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": max(1, math.ceil(epoch)),
        "save_steps": plan.save_steps,
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": step >= plan.max_steps,
                },
                "attributes": {},
            }
        },
        "total_flos": 0.0,
        "train_batch_size": plan.config.get("per_device_train_batch_size", 8),
        "trial_name": None,
        "trial_params": None,
    }
    write_document(os.path.join(checkpoint, "trainer_state.json"), state, sort_keys=True)
    card = _MODEL_CARD.format(
        model=plan.model, name=plan.name, trainer=plan.trainer, label=trainer_label(plan.trainer), **VERSIONS
    )
    replace_file(os.path.join(run_dir, "README.md"), card)


