"""Real TRL trainers on CPU with RunLogger attached: a tiny Llama and word-level tokenizer built here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import require

pytestmark = pytest.mark.integration

torch = require("torch")
trl = require("trl")
datasets = require("datasets")
tokenizers = require("tokenizers")

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback  # noqa: E402

from rlhf_tui.integrations.trl import RunLogger  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
WORDS = "the a cat dog sat ran on mat log big small red blue good bad yes no".split()
PROMPTS = ["the cat", "a dog", "the big log", "a red mat"] * 4


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[str, PreTrainedTokenizerFast]:
    """A 2-layer Llama saved to a directory (its path becomes the model name) and its tokenizer."""
    vocab = {token: index for index, token in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return str(model_dir), tokenizer


def cpu_settings(output_dir: Path, **overrides) -> dict:
    settings = dict(
        output_dir=str(output_dir),
        report_to="none",
        max_steps=3,
        logging_steps=1,
        per_device_train_batch_size=4,
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    settings.update(overrides)
    return settings


def preference_data() -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {"prompt": PROMPTS, "chosen": [" sat on a mat"] * 16, "rejected": [" ran bad no"] * 16}
    )


class CrashAtStep(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"injected crash at step {self.step}")


def dpo_trainer(tiny_model, output_dir: Path, callbacks: list, **overrides) -> trl.DPOTrainer:
    model_dir, tokenizer = tiny_model
    return trl.DPOTrainer(
        model=model_dir,
        args=trl.DPOConfig(**cpu_settings(output_dir, **overrides)),
        train_dataset=preference_data(),
        eval_dataset=preference_data().select(range(4)),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def steps(lines: list[dict], phase: str = "train") -> list[int]:
    return [line["step"] for line in lines if "step" in line and line.get("phase", "train") == phase]


def test_dpo_run_writes_a_complete_run_directory(tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    trainer = dpo_trainer(
        tiny_model, tmp_path / "out", [RunLogger(run_dir)], eval_strategy="steps", eval_steps=3
    )
    trainer.train()

    lines = read_lines(run_dir / "metrics.jsonl")
    header, footer = lines[0], lines[-1]
    assert header["type"] == "header" and header["trainer_type"] == "dpo" and header["writer"] == "rlhf-top"
    assert steps(lines) == [1, 2, 3]
    for record in (line for line in lines if "step" in line and "phase" not in line):
        assert {"loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "logps/chosen"} <= set(
            record["metrics"]
        )
    (evaluation,) = [line for line in lines if line.get("phase") == "eval"]
    assert evaluation["step"] == 3 and "eval_rewards/accuracies" in evaluation["metrics"]
    (summary,) = [line for line in lines if line.get("type") == "summary"]
    assert "train_loss" in summary["metrics"] and "train_runtime" in summary["metrics"]
    assert footer["type"] == "footer" and footer["status"] == "completed" and footer["total_steps"] == 3

    metadata = read_json(run_dir / "run_metadata.json")
    assert metadata["trainer_type"] == "dpo" and metadata["config_class"] == "DPOConfig"
    assert metadata["model_name"] == tiny_model[0]
    assert metadata["dataset_size"] == 16 and metadata["max_steps"] == 3
    assert metadata["beta"] == trainer.args.beta and metadata["loss_type"] == trainer.args.loss_type
    assert metadata["versions"]["trl"] == trl.__version__
    assert metadata["versions"]["torch"] == torch.__version__
    assert metadata["training_args"]["logging_steps"] == 1
    assert metadata["status"] == "completed"
    assert not (run_dir / "postmortem.json").exists()


def test_grpo_run_writes_a_complete_run_directory(tiny_model, tmp_path):
    model_dir, tokenizer = tiny_model
    run_dir = tmp_path / "run"

    def words_in_completion(completions, **kwargs):
        return [float(len(completion.split())) for completion in completions]

    trainer = trl.GRPOTrainer(
        model=model_dir,
        reward_funcs=words_in_completion,
        args=trl.GRPOConfig(**cpu_settings(tmp_path / "out", num_generations=4, max_completion_length=8)),
        train_dataset=datasets.Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=tokenizer,
        callbacks=[RunLogger(run_dir)],
    )
    trainer.train()

    lines = read_lines(run_dir / "metrics.jsonl")
    assert lines[0]["trainer_type"] == "grpo"
    assert steps(lines) == [1, 2, 3]
    for record in (line for line in lines if "step" in line):
        assert {"loss", "reward", "reward_std", "frac_reward_zero_std", "completions/mean_length"} <= set(
            record["metrics"]
        )
    assert lines[-1]["type"] == "footer" and lines[-1]["total_steps"] == 3
    metadata = read_json(run_dir / "run_metadata.json")
    assert metadata["trainer_type"] == "grpo" and metadata["model_name"] == model_dir
    assert metadata["status"] == "completed"


def test_a_crash_the_caller_catches_leaves_a_postmortem(tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    trainer = dpo_trainer(tiny_model, tmp_path / "out", [RunLogger(run_dir), CrashAtStep(2)])
    with pytest.raises(RuntimeError, match="injected crash at step 2"):
        trainer.train()

    postmortem = read_json(run_dir / "postmortem.json")
    assert postmortem["exit_reason"] == "exception"
    assert postmortem["exception"] == "RuntimeError: injected crash at step 2"
    assert postmortem["last_step"] == 1
    assert "in on_step_end" in postmortem["traceback"] and "_inner_training_loop" in postmortem["traceback"]
    lines = read_lines(run_dir / "metrics.jsonl")
    assert steps(lines) == [1] and "footer" not in [line.get("type") for line in lines]
    assert read_json(run_dir / "run_metadata.json")["status"] == "crashed"


def test_resuming_after_a_crash_appends_to_the_history(tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    checkpoints = dict(save_strategy="steps", save_steps=2, max_steps=4)
    crashing = dpo_trainer(tiny_model, tmp_path / "out", [RunLogger(run_dir), CrashAtStep(3)], **checkpoints)
    with pytest.raises(RuntimeError):
        crashing.train()
    assert (run_dir / "postmortem.json").exists()

    resumed = dpo_trainer(tiny_model, tmp_path / "out", [RunLogger(run_dir)], **checkpoints)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))

    lines = read_lines(run_dir / "metrics.jsonl")
    assert [line.get("type") for line in lines].count("header") == 1
    (resume,) = [line for line in lines if line.get("type") == "resume"]
    assert resume["from_step"] == 2
    assert steps(lines) == [1, 2, 3, 4]
    assert lines[-1]["type"] == "footer" and lines[-1]["total_steps"] == 4
    assert not (run_dir / "postmortem.json").exists()
    metadata = read_json(run_dir / "run_metadata.json")
    assert metadata["resumed_from_step"] == 2 and metadata["status"] == "completed"


def test_an_uncaught_crash_in_a_training_script_leaves_a_postmortem(tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        from datasets import Dataset
        from transformers import LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments
        from rlhf_tui.integrations.trl import RunLogger

        class CrashAtStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 2:
                    raise RuntimeError("injected crash in a script")

        tokens = [[4, 5, 6, 7, 8, 9]] * 8
        trainer = Trainer(
            model=LlamaForCausalLM.from_pretrained({tiny_model[0]!r}),
            args=TrainingArguments(
                output_dir={str(tmp_path / "out")!r}, report_to="none", max_steps=3, logging_steps=1,
                per_device_train_batch_size=4, use_cpu=True, save_strategy="no", disable_tqdm=True,
            ),
            train_dataset=Dataset.from_dict({{"input_ids": tokens, "labels": tokens}}),
            callbacks=[RunLogger({str(run_dir)!r}), CrashAtStep()],
        )
        trainer.train()
        """
    )
    (tmp_path / "train.py").write_text(script)
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(tmp_path / "train.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": python_path},
    )
    assert result.returncode == 1, result.stderr
    assert "RuntimeError: injected crash in a script" in result.stderr  # the default hook still ran

    postmortem = read_json(run_dir / "postmortem.json")
    assert postmortem["exit_reason"] == "exception" and postmortem["last_step"] == 1
    assert postmortem["exception"] == "RuntimeError: injected crash in a script"
    assert "in <module>\n    trainer.train()" in postmortem["traceback"]  # the script's own frame
    metadata = read_json(run_dir / "run_metadata.json")
    assert metadata["trainer_type"] == "unknown" and metadata["status"] == "crashed"
