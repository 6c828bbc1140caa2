"""The synthetic run generator: API, determinism, and the raw keys TRL logs."""

import math

import numpy as np
import pytest

from rlhf_tui.core.records import Update
from rlhf_tui.simulate import SCENARIOS, TRAINERS, simulate


def column(run, key, phase="train"):
    return np.array([r.values[key] for r in run.records if r.phase == phase])


def test_same_seed_same_run_and_different_seeds_differ():
    a, b, c = simulate("grpo", "healthy", 50, 7), simulate("grpo", "healthy", 50, 7), simulate("grpo", "healthy", 50, 8)
    assert a.records == b.records and a.facts == b.facts
    assert a.records != c.records


@pytest.mark.parametrize(
    ("trainer", "keys"),
    [
        ("dpo", {"loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
                 "logps/chosen", "grad_norm", "learning_rate"}),
        ("kto", {"loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "grad_norm"}),
        ("grpo", {"reward", "reward_std", "frac_reward_zero_std", "entropy", "completions/mean_length",
                  "completions/clipped_ratio", "clip_ratio/region_mean", "grad_norm", "step_time"}),
        ("ppo", {"objective/kl", "objective/scores", "objective/entropy", "policy/approxkl_avg",
                 "policy/clipfrac_avg", "loss/value_avg", "loss/policy_avg", "val/ratio", "lr"}),
        ("sft", {"loss", "grad_norm", "learning_rate", "mean_token_accuracy", "entropy"}),
    ],
)
def test_records_carry_the_raw_keys_trl_logs(trainer, keys):
    run = simulate(trainer, "healthy", 30, 1)
    train = [r for r in run.records if r.phase == "train"]
    assert [r.step for r in train] == list(range(1, 31))
    assert keys <= set(train[0].values)
    assert all(r.time is not None for r in train) and train[-1].time > train[0].time
    assert run.facts["trainer"] == trainer and run.facts["max_steps"] == 30
    assert isinstance(run.update(), Update) and run.update().finished


def test_dpo_starts_at_ln2_with_quantised_accuracies():
    run = simulate("dpo", "healthy", 200, 3)
    loss, accuracy = column(run, "loss"), column(run, "rewards/accuracies")
    n = run.facts["config"]["per_device_train_batch_size"] * run.facts["config"]["gradient_accumulation_steps"]
    if run.facts["loss_type"] == "sigmoid":
        assert loss[0] == pytest.approx(math.log(2)) and 0.2 < loss[-20:].mean() < 0.65
    assert accuracy[0] == 0 and np.allclose(accuracy * n, np.round(accuracy * n))
    assert accuracy[-20:].mean() > 0.65 and column(run, "rewards/margins")[-20:].mean() > 0.3


def test_grpo_rewards_rise_with_variance_and_a_small_kl():
    run = simulate("grpo", "healthy", 300, 2)
    reward = column(run, "reward")
    assert reward[-30:].mean() > reward[:30].mean()
    assert column(run, "reward_std").min() > 0
    if run.facts["beta"] > 0:
        kl = column(run, "kl")
        assert kl[0] == 0 and kl[-30:].mean() < 0.2


def test_failures_start_at_the_onset():
    run = simulate("sft", "nan_loss", 100, 0)
    loss = column(run, "loss")
    assert run.onset == 40 and np.isfinite(loss[:39]).all() and np.isnan(loss[39:]).all()
    assert simulate("sft", "healthy", 100, 0).onset is None


def test_evaluations_are_eval_records_after_their_train_step():
    run = simulate("sft", "overfit", 100, 0)
    evals = [i for i, r in enumerate(run.records) if r.phase == "eval"]
    assert evals and all(run.records[i - 1].step == run.records[i].step for i in evals)
    assert "eval_loss" in run.records[evals[0]].values


def test_every_trainer_and_scenario_is_listed_and_unknown_ones_are_refused():
    assert set(TRAINERS) == set(SCENARIOS) >= {"dpo", "kto", "orpo", "grpo", "rloo", "ppo", "sft"}
    for trainer, scenarios in SCENARIOS.items():
        assert "healthy" in scenarios and not scenarios["healthy"].flags
        assert all(s.flags for name, s in scenarios.items() if name != "healthy")
    with pytest.raises(ValueError, match="unknown trainer/scenario"):
        simulate("dpo", "melting")
