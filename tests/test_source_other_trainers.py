"""LLaMA-Factory, verl and OpenRLHF logs (tests/fixtures/other_trainers: written with each library's
own format code), read alone and as runs with trainer and roles recognised."""

import math
import shutil
from pathlib import Path

import pytest

from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.sources.console_log import ConsoleLogReader
from rlhf_tui.core.sources.llamafactory import LlamaFactoryReader

OTHERS = Path(__file__).parent / "fixtures" / "other_trainers"


def by_step(update, phase="train"):
    merged = {}
    for record in update.records:
        if record.phase == phase:
            merged.setdefault(record.step, {}).update(record.values)
    return merged


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("others")
    for folder in OTHERS.iterdir():
        if folder.is_dir():
            shutil.copytree(folder, root / folder.name)
    monitor = Monitor([str(root)])
    monitor.scan()
    monitor.catch_up()
    return {run.name: run for run in monitor.visible_runs()}


def test_llamafactory_trainer_log_gives_steps_evals_and_max_steps():
    update = LlamaFactoryReader().feed((OTHERS / "llamafactory_dpo/trainer_log.jsonl").read_bytes())
    steps = by_step(update)
    assert sorted(steps) == list(range(1, 13))
    assert steps[1] == {"loss": pytest.approx(0.6831), "accuracy": 0.45, "lr": 5e-06, "epoch": pytest.approx(1 / 12)}
    assert by_step(update, "eval") == {5: {"loss": pytest.approx(0.665), "epoch": pytest.approx(5 / 12)}, 10: {"loss": pytest.approx(0.64), "epoch": pytest.approx(10 / 12)}}
    assert update.facts == {"writer": "llama-factory", "max_steps": 12}
    assert update.finished and update.notes == []


def test_llamafactory_v1_lines_carry_step_and_total_steps():
    update = LlamaFactoryReader().feed((OTHERS / "llamafactory_v1/trainer_log.jsonl").read_bytes())
    assert sorted(by_step(update)) == [1, 2, 3, 4, 5]
    assert set(by_step(update)[1]) == {"loss", "grad_norm", "learning_rate", "epoch"}


def test_llamafactory_bad_lines_are_notes():
    update = LlamaFactoryReader().feed(b'{"current_steps": 1, "loss": 0.5}\nnot json\n[1]\n{"loss": 1}\n{"current_steps": 2, "percentage": 5}\n')
    assert [(r.step, r.values) for r in update.records] == [(1, {"loss": 0.5})]
    assert update.notes == ["line 2: not valid JSON, skipped", "line 3: not a JSON object, skipped", "line 4: no step, skipped"]


def test_verl_console_lines_give_their_own_steps_with_numpy_values():
    update = ConsoleLogReader().feed((OTHERS / "verl_grpo/verl_demo.log").read_bytes())
    steps = by_step(update)
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert steps[1]["actor/pg_loss"] == pytest.approx(-0.017) and steps[1]["training/global_step"] == 1
    assert math.isnan(steps[1]["val-core/openai/gsm8k/reward/mean@1"])


def test_openrlhf_global_step_lines_and_progress_bar_postfix():
    ppo = by_step(ConsoleLogReader().feed((OTHERS / "openrlhf_ppo/train.log").read_bytes()))
    assert sorted(ppo) == [1, 2, 3, 4, 5] and ppo[2]["critic_loss"] == 0.25
    dpo = by_step(ConsoleLogReader().feed((OTHERS / "openrlhf_dpo/train.log").read_bytes()))
    assert sorted(dpo) == list(range(1, 9))  # two epochs of 4 micro-steps
    assert dpo[1]["loss"] == 0.693 and dpo[8]["loss"] == 0.553 and dpo[2]["acc"] == 0.55


@pytest.mark.parametrize(
    "name, trainer, roles",
    [
        ("llamafactory_dpo", "unknown", {"loss": "loss", "win_rate": "accuracy", "learning_rate": "lr"}),
        ("verl_grpo/verl_demo", "grpo",  # a log among other runs is a run named after the file
         {"loss": "actor/pg_loss", "reward": "critic/score/mean", "kl": "actor/kl_loss", "entropy": "actor/entropy", "completion_length": "response_length/mean"}),
        ("verl_grpo/gsm8k", "grpo", {"loss": "actor/pg_loss", "approx_kl": "actor/ppo_kl", "clip_ratio": "actor/pg_clipfrac", "step_time": "timing_s/step"}),
        ("openrlhf_ppo", "ppo", {"loss": "policy_loss", "reward": "reward", "reward_std": "rollout/reward_std", "value_loss": "critic_loss", "learning_rate": "actor_lr", "grad_norm": "actor_grad_norm", "kl": "kl"}),
        ("openrlhf_dpo", "unknown", {"loss": "loss", "win_rate": "acc", "chosen_reward": "chosen_reward", "rejected_reward": "reject_reward", "learning_rate": "lr"}),
    ],
)
def test_each_log_is_a_run_whose_trainer_and_roles_are_recognised(runs, name, trainer, roles):
    run = runs[name]
    assert run.trainer == trainer
    assert {role: run.role_key(role) for role in roles} == roles
    assert not run.notes
