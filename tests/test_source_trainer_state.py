import json

from conftest import REAL_RUNS

from rlhf_tui.core.sources.model_card import read_model_card
from rlhf_tui.core.sources.trainer_state import checkpoint_number, read_trainer_state


def test_finished_checkpoint():
    update = read_trainer_state((REAL_RUNS / "grpo_small/checkpoint-40/trainer_state.json").read_bytes())
    assert update.finished and update.facts["max_steps"] == 40
    assert [r.step for r in update.records] == list(range(1, 41))
    assert "frac_reward_zero_std" in update.records[0].values


def test_lagging_checkpoint_is_not_finished():
    update = read_trainer_state((REAL_RUNS / "dpo_crash/checkpoint-10/trainer_state.json").read_bytes())
    assert not update.finished
    assert update.facts == {"max_steps": 60, "global_step": 10, "logging_steps": 1}


def test_eval_entries_and_summary_kept_apart():
    state = {
        "global_step": 4,
        "max_steps": 4,
        "log_history": [
            {"loss": 1.0, "step": 2, "epoch": 0.5},
            {"eval_loss": 1.2, "eval_runtime": 0.3, "step": 2, "epoch": 0.5},
            {"train_runtime": 5.0, "train_loss": 0.9, "step": 4, "epoch": 1.0},
        ],
    }
    update = read_trainer_state(json.dumps(state).encode())
    assert [(r.step, r.phase, r.values) for r in update.records] == [
        (2, "train", {"loss": 1.0, "epoch": 0.5}),
        (2, "eval", {"loss": 1.2, "runtime": 0.3, "epoch": 0.5}),
    ]
    assert update.facts["summary"] == {"train_runtime": 5.0, "train_loss": 0.9}


def test_checkpoint_number():
    assert checkpoint_number("checkpoint-120") == 120
    assert checkpoint_number("checkpoint-final") is None


def test_model_card_tags_name_the_trainer():
    update = read_model_card((REAL_RUNS / "grpo_small/README.md").read_bytes())
    assert update.facts["trainer"] == "grpo"


def test_model_card_yaml_is_safe_loaded():
    card = b"---\ntags: !!python/object/apply:os.system ['echo pwned']\n---\n"
    update = read_model_card(card)
    assert update.notes and "trainer" not in update.facts
