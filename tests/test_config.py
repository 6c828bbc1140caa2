"""A run's config: flattened from any source's shape, merged across a run's sources, compared across runs."""

import math

from rlhf_tui.core.config import HIDDEN, config_differences, facts_from_training_args, flat_config
from rlhf_tui.core.records import Update
from rlhf_tui.core.run import Run, SourceFile
from rlhf_tui.core.sources.model_card import read_model_card


class Configured:
    def __init__(self, config):
        self.facts = {"config": config}


def test_nested_configs_are_flattened_with_dots_and_keep_scalars_only():
    tree = {
        "actor_rollout_ref": {"actor": {"optim": {"lr": 1e-6}}, "rollout": {"n": 5}},
        "algorithm": {"adv_estimator": "grpo", "use_kl_in_reward": False},
        "tags": ["a", "b"],
        "objects": [{"x": 1}],
        "missing": None,
        "nan": math.nan,
        "text": "x" * 1000,
    }
    assert flat_config(tree, skip=("tags",)) == {
        "actor_rollout_ref.actor.optim.lr": 1e-6,
        "actor_rollout_ref.rollout.n": 5,
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "nan": "nan",
        "text": "x" * 500,
    }


def test_credentials_in_a_config_are_hidden_and_tokenizer_tokens_are_not():
    tree = {
        "hub_token": "hf_abcdef",
        "use_wandb": "0123456789abcdef",  # OpenRLHF: the W&B API key itself
        "wandb": {"api_key": "k", "project": "p"},
        "s3": {"secret": "s", "key": "AKIA"},
        "pad_token": "<pad>",
        "hub_model_id": "me/model",
        "push_to_hub_token": None,
        "report_to_password": 12,
    }
    assert flat_config(tree) == {
        "hub_token": HIDDEN,
        "use_wandb": HIDDEN,
        "wandb.api_key": HIDDEN,
        "wandb.project": "p",
        "s3.secret": HIDDEN,
        "s3.key": "AKIA",
        "pad_token": "<pad>",
        "hub_model_id": "me/model",
        "report_to_password": HIDDEN,
    }


def test_training_args_facts_take_only_usable_values():
    assert facts_from_training_args({"max_steps": 10.0, "logging_steps": 0.1, "beta": 0.1, "loss_type": ["ipo"]}) == {
        "max_steps": 10,
        "beta": 0.1,
        "loss_type": "ipo",
    }
    assert facts_from_training_args({"max_steps": True, "beta": math.inf, "loss_type": ["a", "b"]}) == {}


def test_differences_treat_equal_values_as_equal_across_trackers_spellings():
    runs = [
        Configured({"lr": 1e-5, "bf16": True, "loss": "sigmoid", "seed": 1, "only_here": 3, "nan": "nan"}),
        Configured({"lr": "1e-05", "bf16": "True", "loss": "sigmoid", "seed": 1.0, "nan": math.nan}),
        Configured({"lr": 1e-5, "bf16": 1.0, "loss": "ipo", "seed": 1}),
    ]
    assert config_differences(runs) == {
        "bf16": [True, "True", 1.0],
        "loss": ["sigmoid", "sigmoid", "ipo"],
        "nan": ["nan", math.nan, None],  # "nan" and NaN are equal; missing from the third run
        "only_here": [3, None, None],
    }
    assert config_differences(runs[:2]) == {"only_here": [3, None]}
    assert config_differences([]) == {} and config_differences([Configured({})]) == {}


def test_a_run_merges_the_configs_of_all_its_sources_higher_ranked_last():
    run = Run("/r", "/")
    files = {
        "card": SourceFile("/r/README.md", "model_card", None),
        "tb": SourceFile("/r/runs/x/events", "tensorboard", "tensorboard"),
        "wandb": SourceFile("/r/run.wandb", "wandb", "wandb"),
    }
    run.files = {file.path: file for file in files.values()}
    run.apply(files["wandb"], Update(facts={"config": {"lr": 1e-5, "project_only": "w"}}))
    run.apply(files["tb"], Update(facts={"config": {"lr": 2e-5, "tb_only": 1}}))
    run.apply(files["card"], read_model_card(b"---\nbase_model: Qwen/Qwen2-0.5B\ndatasets: [trl-lib/ultrafeedback]\ntags: [dpo]\n---\n"))
    assert run.facts["config"] == {
        "base_model": "Qwen/Qwen2-0.5B",
        "datasets": "['trl-lib/ultrafeedback']",
        "lr": 1e-5,
        "tb_only": 1,
        "project_only": "w",
    }
