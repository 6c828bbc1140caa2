"""One corpus run: a real TRL trainer on CPU, started by make_corpus.py as `python -u train.py RUN ...`.

The run's spec (trainer, arguments, data, reward, injected fault) is looked up by name in runs.py.
stdout and stderr go, unbuffered and merged, into the run's train.log, as `python -u train.py 2>&1 |
tee train.log` would write it. Faults are injected by ordinary TrainerCallbacks: a NaN written into a
weight, an exception, a sleep that never ends, a parameter that is never used (frozen model).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
    set_seed,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for rlhf_tui
sys.path.insert(0, str(Path(__file__).resolve().parent))
import assets  # noqa: E402
from runs import RUNS  # noqa: E402

from rlhf_tui.integrations.trl import RunLogger  # noqa: E402


class NanIntoWeightAt(TrainerCallback):
    """Writes NaN into one weight just before step `step` runs (a corrupted parameter)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step - 1:
            with torch.no_grad():
                weight = model.get_input_embeddings().weight
                weight[: weight.shape[0] // 2] = float("nan")


class CrashAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"injected failure at step {self.step}: shard reader lost its connection")


class HangAt(TrainerCallback):
    """Sleeps forever at the end of step `step` (a deadlocked collective, a blocked filesystem)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            while True:
                time.sleep(3600)


class SlowFrom(TrainerCallback):
    """From step `step` on, every step takes `seconds` longer (another job on the machine, a throttled disk)."""

    def __init__(self, step: int, seconds: float) -> None:
        self.step = step
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            time.sleep(self.seconds)


def frozen(model):
    """Every weight frozen; the only trainable parameter is an 'adapter' the forward pass never uses."""
    model.requires_grad_(False)
    model.unattached_adapter = torch.nn.Parameter(torch.zeros(8))
    return model


def dataset(name: str, n: int, seed: int) -> Dataset:
    return Dataset.from_dict(assets.DATASETS[name](n, seed))


def config_class(trainer: str):
    import trl

    if trainer in ("orpo", "cpo", "online_dpo"):
        from trl.experimental import cpo, online_dpo, orpo

        return {"orpo": orpo.ORPOConfig, "cpo": cpo.CPOConfig, "online_dpo": online_dpo.OnlineDPOConfig}[trainer]
    return {
        "dpo": trl.DPOConfig,
        "kto": trl.KTOConfig,
        "sft": trl.SFTConfig,
        "grpo": trl.GRPOConfig,
        "rloo": trl.RLOOConfig,
        "reward": trl.RewardConfig,
    }[trainer]


def trainer_class(trainer: str):
    import trl

    if trainer in ("orpo", "cpo", "online_dpo"):
        from trl.experimental import cpo, online_dpo, orpo

        return {"orpo": orpo.ORPOTrainer, "cpo": cpo.CPOTrainer, "online_dpo": online_dpo.OnlineDPOTrainer}[trainer]
    return {
        "dpo": trl.DPOTrainer,
        "kto": trl.KTOTrainer,
        "sft": trl.SFTTrainer,
        "grpo": trl.GRPOTrainer,
        "rloo": trl.RLOOTrainer,
        "reward": trl.RewardTrainer,
    }[trainer]


DEFAULT_DATA = {
    "dpo": "pairs", "orpo": "pairs", "cpo": "pairs", "reward": "pairs", "kto": "unpaired",
    "sft": "sft", "grpo": "prompts", "rloo": "prompts", "online_dpo": "prompts",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--base", required=True, type=Path, help="the pre-trained tiny model")
    options = parser.parse_args()
    spec = RUNS[options.run]
    trainer_name = spec["trainer"]
    torch.set_num_threads(1)

    settings = dict(
        output_dir=str(options.output),
        report_to="tensorboard",
        logging_steps=1,
        save_strategy="steps",
        save_steps=25,
        save_only_model=True,
        save_total_limit=1,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        use_cpu=True,
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
    )
    settings.update(spec.get("args", {}))
    args = config_class(trainer_name)(**settings)

    data = spec.get("data", DEFAULT_DATA[trainer_name])
    train_dataset = dataset(data, spec.get("train_size", 256), seed=spec.get("data_seed", 1))
    eval_dataset = None
    if settings.get("eval_strategy", "no") != "no":
        eval_dataset = dataset(spec.get("eval_data", data), spec.get("eval_size", 32), seed=1000 + spec.get("data_seed", 1))

    set_seed(args.seed)  # before loading: a reward model's score head is initialised at random
    tokenizer = AutoTokenizer.from_pretrained(options.base)
    if trainer_name == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(options.base, num_labels=1)
    else:
        model = AutoModelForCausalLM.from_pretrained(options.base)
    if spec.get("frozen"):
        model = frozen(model)

    callbacks = [RunLogger(options.output)]
    fault = spec.get("fault", {})
    if fault.get("kind") == "nan":
        callbacks.append(NanIntoWeightAt(fault["step"]))
    elif fault.get("kind") == "crash":
        callbacks.append(CrashAt(fault["step"]))
    elif fault.get("kind") == "hang":
        callbacks.append(HangAt(fault["step"]))
    elif fault.get("kind") == "slow":
        callbacks.append(SlowFrom(fault["step"], fault["seconds"]))

    kwargs = dict(model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer, callbacks=callbacks)
    if eval_dataset is not None:
        kwargs["eval_dataset"] = eval_dataset
    if trainer_name in ("grpo", "rloo", "online_dpo"):
        kwargs["reward_funcs"] = assets.REWARDS[spec["reward"]]
    trainer = trainer_class(trainer_name)(**kwargs)
    trainer.train()
    trainer.save_model()  # what a training script does at the end: weights and the model card


if __name__ == "__main__":
    main()
