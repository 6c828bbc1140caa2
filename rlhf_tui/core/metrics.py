"""Metric roles: which raw key means "loss", "reward", "KL"... for each trainer, and trainer detection.

Charts and rules speak of roles; sources speak of raw keys (TRL names, PTT's renamed keys, tracker
keys without their `train/` prefix, verl, OpenRLHF and LLaMA-Factory names). Each role has an ordered alias list per
trainer family; the first alias present in a run wins. Multi-GPU writers add `_mean/_max/_min`
suffixes: `<alias>_mean` is accepted for `<alias>`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from rlhf_tui.core.records import EVAL_PREFIX

@dataclass(frozen=True)
class TrainerKind:
    """label: how a person names it. family: whose alias table names its metrics. rules_as: the
    trainer whose diagnostic rules apply, for variants that log and fail like it (None: itself)."""

    label: str
    family: str
    rules_as: str | None = None


# Every trainer TRL has or had (trl, trl.experimental), plus IPO, which TRL runs as a DPO loss type.
TRAINER_KINDS = {
    "dpo": TrainerKind("DPO", "preference"),
    "ipo": TrainerKind("IPO", "preference"),
    "cpo": TrainerKind("CPO", "preference"),
    "orpo": TrainerKind("ORPO", "preference"),
    "kto": TrainerKind("KTO", "preference"),
    "bco": TrainerKind("BCO", "preference"),
    "tpo": TrainerKind("TPO", "preference"),
    "grpo": TrainerKind("GRPO", "online"),
    "gmpo": TrainerKind("GMPO", "online", rules_as="grpo"),
    "async_grpo": TrainerKind("Async GRPO", "online", rules_as="grpo"),
    "rloo": TrainerKind("RLOO", "online"),
    "ppo": TrainerKind("PPO", "online"),
    "a2po": TrainerKind("A2PO", "online"),
    "sdpo": TrainerKind("SDPO", "online"),
    "online_dpo": TrainerKind("Online DPO", "online"),
    "xpo": TrainerKind("XPO", "online", rules_as="online_dpo"),
    "nash_md": TrainerKind("Nash-MD", "online", rules_as="online_dpo"),
    "sft": TrainerKind("SFT", "sft"),
    "gkd": TrainerKind("GKD", "sft"),
    "gold": TrainerKind("GOLD", "sft"),
    "distillation": TrainerKind("Distillation", "sft"),
    "async_distillation": TrainerKind("Async distillation", "sft"),
    "server_distillation": TrainerKind("Server distillation", "sft"),
    "iw_opd": TrainerKind("IW-OPD", "sft"),
    "sdft": TrainerKind("SDFT", "sft"),
    "reward": TrainerKind("Reward model", "reward"),
    "prm": TrainerKind("Process reward model", "reward"),
    "unknown": TrainerKind("unknown", "unknown"),
}
TRAINERS = tuple(TRAINER_KINDS)

PREFERENCE = frozenset(name for name, kind in TRAINER_KINDS.items() if kind.family == "preference")
ONLINE_RL = frozenset(name for name, kind in TRAINER_KINDS.items() if kind.family == "online")

# Spellings in PTT headers, model-card tags, config and trainer class names, our own callback.
_TRAINER_NAMES = {
    **{name: name for name in TRAINER_KINDS if name != "unknown"},
    **{name.replace("_", "-"): name for name in TRAINER_KINDS},
    **{name.replace("_", ""): name for name in TRAINER_KINDS},
    "simpo": "cpo",
    "ppov2": "ppo",
    "iwopd": "iw_opd",
    "nashmd": "nash_md",
}
del _TRAINER_NAMES["unknown"]


def normalize_trainer(name: object) -> str | None:
    """A trainer from any spelling ("DPO", "DPOConfig", "online-dpo"); None if unknown.

    "unknown" (what PTT writes for a trainer it does not know) is no evidence either.
    """
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    for suffix in ("config", "trainer"):
        if key.endswith(suffix) and key != suffix:
            key = key[: -len(suffix)].rstrip("-_")
    return _TRAINER_NAMES.get(key)


def trainer_label(trainer: str) -> str:
    kind = TRAINER_KINDS.get(trainer)
    return kind.label if kind else trainer.upper()


def rules_trainer(trainer: str) -> str:
    """The trainer whose rules diagnose `trainer`."""
    kind = TRAINER_KINDS.get(trainer)
    return kind.rules_as or trainer if kind else trainer


# Training-argument fields only one TRL config class has (TRL 0.x to 1.x), most specific first:
# the trainer of a run whose only record of it is its arguments (TensorBoard's args text, PTT's
# metadata for a trainer PTT does not know).
_ARGS_FINGERPRINTS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (trainer, frozenset(fields))
    for trainer, fields in (
        ("iw_opd", ("iw_opd_gamma", "iw_opd_epsilon")),
        ("gold", ("teacher_tokenizer_name_or_path", "uld_crossentropy_weight")),
        ("gkd", ("seq_kd",)),
        ("sdpo", ("reprompt_template", "distillation_weight")),
        ("sdft", ("teacher_model_kind", "generate_from_teacher")),
        ("async_distillation", ("teacher_server_urls",)),
        ("server_distillation", ("teacher_model_server_url",)),
        ("distillation", ("teacher_model_name_or_path",)),
        ("tpo", ("tpo_alpha",)),
        ("a2po", ("num_value_samples",)),
        ("async_grpo", ("max_staleness", "weight_sync_steps")),
        ("rloo", ("normalize_advantages", "reward_clip_range", "rloo_k")),
        ("grpo", ("importance_sampling_level", "scale_rewards")),
        ("nash_md", ("mixture_coef",)),
        ("online_dpo", ("missing_eos_penalty", "reward_model_path")),
        ("kto", ("desirable_weight", "undesirable_weight")),
        ("bco", ("prompt_sample_size", "min_density_ratio")),
        ("cpo", ("cpo_alpha", "simpo_gamma")),
        ("dpo", ("ld_alpha", "f_divergence_type", "use_weighting", "rpo_alpha")),
        ("reward", ("center_rewards_coefficient",)),
        ("ppo", ("num_ppo_epochs", "vf_coef", "cliprange_value")),
        ("sft", ("packing", "dataset_text_field", "completion_only_loss")),
    )
)


def trainer_from_args(args: Collection[str]) -> str | None:
    """The trainer whose config class has these training-argument names, when they tell."""
    names = set(args)
    for trainer, fields in _ARGS_FINGERPRINTS:
        if names & fields:
            return trainer
    if "padding_value" in names and "generate_during_eval" in names and "loss_type" not in names:
        return "orpo"
    return None


# Written once by transformers at the end of training: run facts, not a step's metrics.
SUMMARY_KEYS = frozenset(
    {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
)


def split_phase(key: str) -> tuple[str, str]:
    """("train" | "eval", key) of a tracker key as transformers names it: `train/loss`, `eval/loss`.

    A key with another prefix, or none, is a train key kept whole.
    """
    prefix, slash, rest = key.partition("/")
    if slash and rest and prefix in ("train", "eval"):
        return prefix, rest
    return "train", key


_COMMON: dict[str, tuple[str, ...]] = {
    "loss": (
        "loss",
        "dpo_loss",
        "grpo_loss",
        "ppo_loss",
        "sft_loss",
        "kto_loss",
        "orpo_loss",
        "cpo_loss",
        "ipo_loss",
        "rloo_loss",
        "online_dpo_loss",
        "reward_loss",
        "train_loss_step",
        "actor/pg_loss",
        "loss/policy_avg",
        "policy_loss",  # OpenRLHF PPO
    ),
    "grad_norm": ("grad_norm", "actor/grad_norm", "grad_norm_mean", "actor_grad_norm"),
    "learning_rate": ("learning_rate", "lr", "actor/lr", "actor_lr"),
    "entropy": ("entropy", "objective/entropy", "actor/entropy", "policy/entropy_avg"),
    "step_time": ("step_time", "timing_s/step", "perf/time_per_step"),
    "epoch": ("epoch",),
}

_PREFERENCE: dict[str, tuple[str, ...]] = {
    "win_rate": ("rewards/accuracies", "win_rate", "accuracy", "acc"),  # LLaMA-Factory, OpenRLHF
    "margin": ("rewards/margins", "reward_margin"),
    "chosen_reward": ("rewards/chosen", "rewards_chosen", "rewards/chosen_sum", "chosen_reward"),
    "rejected_reward": ("rewards/rejected", "rewards_rejected", "rewards/rejected_sum", "reject_reward"),
    "chosen_logps": ("logps/chosen", "logps_chosen", "logps/chosen_sum"),
    "rejected_logps": ("logps/rejected", "logps_rejected", "logps/rejected_sum"),
    "kl": ("kl",),
    "nll_loss": ("nll_loss",),
    "log_odds_ratio": ("log_odds_ratio",),
}

_ONLINE: dict[str, tuple[str, ...]] = {
    # What the reward model or function says (PPO's objective/scores), not the KL-penalised
    # objective/rlhf_reward: the same meaning as GRPO's reward, and what reward hacking inflates.
    "reward": (
        "reward",
        "reward_mean",
        "objective/scores",
        "objective/rlhf_reward",
        "critic/score/mean",
        "env/reward_mean",
        "rewards/mean",
        "rollout/reward_mean",  # OpenRLHF
    ),
    "reward_std": ("reward_std", "critic/score/std", "objective/scores_std", "rollout/reward_std"),
    "kl": ("kl", "objective/kl", "actor/kl_loss", "kl_mean"),
    "completion_length": (
        "completions/mean_length",
        "completion_length",
        "response_length/mean",
        "rollout/response_length_mean",
        "response_length",
    ),
    "clipped_ratio": ("completions/clipped_ratio", "response_length/clip_ratio", "rollout/truncated_rate"),
    "eos_ratio": ("val/contain_eos_token",),  # Online DPO: the share of completions that ended
    "frac_reward_zero_std": ("frac_reward_zero_std",),
    "clip_ratio": ("clip_ratio/region_mean", "clip_ratio", "policy/clipfrac_avg", "actor/pg_clipfrac"),
    "value_loss": ("loss/value_avg", "critic/vf_loss", "value_loss", "critic_loss"),
    "policy_loss": ("loss/policy_avg", "actor/pg_loss", "policy_loss"),
    "approx_kl": ("policy/approxkl_avg", "actor/ppo_kl", "approx_kl", "ppo_kl"),
    "is_ratio": ("val/ratio", "sampling/importance_sampling_ratio/mean", "is_ratio"),
    "win_rate": ("rewards/accuracies", "win_rate"),
    "margin": ("rewards/margins", "reward_margin"),
    "chosen_reward": ("rewards/chosen",),
    "rejected_reward": ("rewards/rejected",),
}

_SFT: dict[str, tuple[str, ...]] = {
    "token_accuracy": ("mean_token_accuracy",),
}

_REWARD_MODEL: dict[str, tuple[str, ...]] = {
    "win_rate": ("accuracy", "rewards/accuracies", "acc"),
    "margin": ("margin", "rewards/margins"),
}


def _table(*parts: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for part in parts:
        for role, aliases in part.items():
            table[role] = table.get(role, ()) + aliases
    return table


_BY_FAMILY = {
    "preference": _table(_COMMON, _PREFERENCE),
    "online": _table(_COMMON, _ONLINE),
    "sft": _table(_COMMON, _SFT),
    "reward": _table(_COMMON, _REWARD_MODEL),
    "unknown": _table(_COMMON, _PREFERENCE, _ONLINE, _SFT),
}


def alias_table(trainer: str) -> dict[str, tuple[str, ...]]:
    kind = TRAINER_KINDS.get(trainer)
    return _BY_FAMILY[kind.family if kind else "unknown"]


ROLES = tuple(dict.fromkeys(role for table in _BY_FAMILY.values() for role in table))
_ROLE_KEYS = frozenset(
    alias + suffix
    for table in _BY_FAMILY.values()
    for aliases in table.values()
    for alias in aliases
    for suffix in ("", "_mean")
)


def may_carry_a_role(key: str) -> bool:
    """Whether some trainer's roles could be read from this raw key (its `eval_` twin too)."""
    return key in _ROLE_KEYS or (key.startswith(EVAL_PREFIX) and key[len(EVAL_PREFIX) :] in _ROLE_KEYS)


def resolve_roles(trainer: str, keys: Collection[str]) -> dict[str, str]:
    """Map each role to the raw key that carries it in this run (train keys and `eval_` keys)."""
    resolved: dict[str, str] = {}
    for role, aliases in alias_table(trainer).items():
        for prefix in ("", "eval_"):
            for alias in aliases:
                for candidate in (prefix + alias, prefix + alias + "_mean"):
                    if candidate in keys:
                        resolved[prefix + role] = candidate
                        break
                if prefix + role in resolved:
                    break
    return resolved


def infer_trainer(keys: Iterable[str]) -> str:
    """Guess the trainer family from which raw keys a run logs."""
    keys = set(keys)
    if "frac_reward_zero_std" in keys or "completions/clipped_ratio" in keys:
        return "grpo"
    if keys & {"critic/vf_loss", "loss/value_avg", "ppo_loss", "critic_loss"}:
        return "ppo"
    if "actor/pg_loss" in keys or "grpo_loss" in keys:
        return "grpo"
    if "objective/rlhf_reward" in keys or "objective/scores" in keys:
        return "online_dpo" if "rewards/accuracies" in keys else "rloo"
    if "log_odds_ratio" in keys or "orpo_loss" in keys:
        return "orpo"
    if "rewards/chosen_sum" in keys or "kto_loss" in keys:
        return "kto"
    if keys & {"rewards/accuracies", "rewards/margins", "win_rate", "reward_margin", "dpo_loss"}:
        return "dpo"
    if "sft_loss" in keys or "mean_token_accuracy" in keys:
        return "sft"
    return "unknown"
