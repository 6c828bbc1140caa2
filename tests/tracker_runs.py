"""Real TRL trainers logging to W&B (offline), Trackio and MLflow, each in a process of its own.

Shared by the tracker integration tests and `fixtures/trackers/generate.py`. A run is launched in
a launch directory (its working directory, where `wandb/`, `trackio/`, `mlflow.db` and the relative
`output_dir` land); HOME, the XDG and Hugging Face caches and W&B's own dirs point into a sibling
`<launch>-home` directory, so nothing is written outside the two, and nothing is fetched from the
network (the model is a 2-layer Llama built by the script, the tokenizer a word list).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

TRAIN_SCRIPT = r'''
import os, sys, time
import datasets, tokenizers, torch, trl
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback

trainer_kind, output_dir = sys.argv[1], sys.argv[2]
report_to = [name for name in sys.argv[3].split(",") if name]
steps, crash_at, sleep = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
run_name = sys.argv[7] if len(sys.argv) > 7 else None

WORDS = "the a cat dog sat ran on mat log big small red blue good bad yes no".split()
PROMPTS = ["the cat", "a dog", "the big log", "a red mat"] * 4
vocab = {token: index for index, token in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
word_level.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
tokenizer = PreTrainedTokenizerFast(
    tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
)
config = LlamaConfig(
    vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=3,
)
torch.manual_seed(0)
model_dir = os.path.join(os.environ["HOME"], "tiny-llama")
LlamaForCausalLM(config).save_pretrained(model_dir)
tokenizer.save_pretrained(model_dir)


class Pace(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if crash_at and state.global_step == crash_at:
            raise RuntimeError(f"injected crash at step {crash_at}")
        time.sleep(sleep)


settings = dict(
    output_dir=output_dir, report_to=report_to, run_name=run_name, max_steps=steps, logging_steps=1,
    per_device_train_batch_size=4, use_cpu=True, bf16=False, save_strategy="steps", save_steps=steps,
    save_only_model=True, seed=0, disable_tqdm=False,
)
if trainer_kind == "dpo":
    data = datasets.Dataset.from_dict({"prompt": PROMPTS, "chosen": [" sat on a mat"] * 16, "rejected": [" ran bad no"] * 16})
    trainer = trl.DPOTrainer(
        model=model_dir, args=trl.DPOConfig(**settings, eval_strategy="steps", eval_steps=2), train_dataset=data,
        eval_dataset=data.select(range(4)), processing_class=tokenizer, callbacks=[Pace()],
    )
else:
    def words(completions, **kwargs):
        return [float(len(completion.split())) for completion in completions]
    trainer = trl.GRPOTrainer(
        model=model_dir, reward_funcs=words,
        args=trl.GRPOConfig(**settings, num_generations=4, max_completion_length=8),
        train_dataset=datasets.Dataset.from_dict({"prompt": PROMPTS}), processing_class=tokenizer, callbacks=[Pace()],
    )
trainer.train()
'''


def home_of(launch_dir: Path) -> Path:
    return launch_dir.parent / f"{launch_dir.name}-home"


def isolated_env(launch_dir: Path, mlflow_uri: str | None = None, wandb_flush_seconds: float | None = None) -> dict:
    """Environment for a training process whose every write lands under `launch_dir`."""
    home = home_of(launch_dir)
    home.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WANDB_", "MLFLOW_", "TRACKIO_", "HF_"))}
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        HF_HOME=str(home / ".cache/huggingface"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="offline",
        WANDB_DIR=str(launch_dir),
        WANDB_CACHE_DIR=str(home / ".cache/wandb"),
        WANDB_CONFIG_DIR=str(home / ".config/wandb"),
        WANDB_DATA_DIR=str(home / ".local/share/wandb"),
        WANDB_PROJECT="rlhf-top-tests",
        WANDB_SILENT="true",
        TRACKIO_DIR=str(launch_dir / "trackio"),
        MLFLOW_TRACKING_URI=mlflow_uri or f"sqlite:///{launch_dir / 'mlflow.db'}",
        PYTHONPATH=python_path,
        PYTHONUNBUFFERED="1",
    )
    if mlflow_uri and mlflow_uri.startswith("file:"):
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if wandb_flush_seconds is not None:
        env["WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"] = str(wandb_flush_seconds)
    return env


def start_training(
    launch_dir: Path,
    trainer: str,
    report_to: list[str],
    steps: int = 4,
    crash_at: int = 0,
    sleep: float = 0.0,
    run_name: str | None = None,
    output_dir: str = "out",
    **env_options,
) -> subprocess.Popen:
    """Start a training process in `launch_dir` (its working directory); its output goes to train.log."""
    launch_dir.mkdir(parents=True, exist_ok=True)
    script = home_of(launch_dir) / "train.py"
    env = isolated_env(launch_dir, **env_options)
    script.write_text(TRAIN_SCRIPT)
    args = [sys.executable, str(script), trainer, output_dir, ",".join(report_to), str(steps), str(crash_at), str(sleep)]
    if run_name:
        args.append(run_name)
    with open(home_of(launch_dir) / f"{run_name or trainer}.log", "wb") as log:
        return subprocess.Popen(args, cwd=launch_dir, env=env, stdout=log, stderr=subprocess.STDOUT)


def train(launch_dir: Path, trainer: str, report_to: list[str], timeout: float = 600, **options) -> int:
    """Run a training process to its end; its exit code."""
    process = start_training(launch_dir, trainer, report_to, **options)
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
