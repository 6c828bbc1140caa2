"""Metric roles: which raw key means "loss", "reward", "KL"... for each trainer, and trainer detection.

Charts and rules speak of roles; sources speak of raw keys (TRL names, PTT's renamed keys, tracker
keys without their `train/` prefix, verl, OpenRLHF and LLaMA-Factory names). Each role has an ordered alias list per
trainer family; the first alias present in a run wins. Multi-GPU writers add `_mean/_max/_min`
suffixes: `<alias>_mean` is accepted for `<alias>`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

TRAINER_LABELS = {
    "dpo": "DPO",
    "ipo": "IPO",
    "cpo": "CPO",
    "orpo": "ORPO",
    "kto": "KTO",
    "grpo": "GRPO",
    "rloo": "RLOO",
    "ppo": "PPO",
    "online_dpo": "Online DPO",
    "sft": "SFT",
    "reward": "Reward model",
    "unknown": "unknown",
}
TRAINERS = tuple(TRAINER_LABELS)

PREFERENCE = frozenset({"dpo", "ipo", "cpo", "orpo", "kto"})
ONLINE_RL = frozenset({"grpo", "rloo", "ppo", "online_dpo"})

# Spellings seen in PTT headers, model-card tags, config class names and our own callback.
_TRAINER_NAMES = {
    "dpo": "dpo",
    "ipo": "ipo",
    "cpo": "cpo",
    "simpo": "cpo",
    "orpo": "orpo",
    "kto": "kto",
    "grpo": "grpo",
    "rloo": "rloo",
    "ppo": "ppo",
    "ppov2": "ppo",
    "online_dpo": "online_dpo",
    "online-dpo": "online_dpo",
    "onlinedpo": "online_dpo",
    "sft": "sft",
    "reward": "reward",
    "reward-trainer": "reward",
    "reward_trainer": "reward",
    "unknown": "unknown",
}


def normalize_trainer(name: object) -> str | None:
    """A trainer family from any spelling ("DPO", "DPOConfig", "online-dpo"); None if unknown."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    for suffix in ("config", "trainer"):
        if key.endswith(suffix) and key != suffix:
            key = key[: -len(suffix)]
    return _TRAINER_NAMES.get(key)


def trainer_label(trainer: str) -> str:
    return TRAINER_LABELS.get(trainer, trainer.upper())


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
    "reward": (
        "reward",
        "reward_mean",
        "objective/rlhf_reward",
        "objective/scores",
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
        "val/num_eos_tokens",
        "rollout/response_length_mean",
        "response_length",
    ),
    "clipped_ratio": ("completions/clipped_ratio", "response_length/clip_ratio", "rollout/truncated_rate"),
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
    if trainer in PREFERENCE:
        return _BY_FAMILY["preference"]
    if trainer in ONLINE_RL:
        return _BY_FAMILY["online"]
    if trainer in ("sft", "reward"):
        return _BY_FAMILY[trainer]
    return _BY_FAMILY["unknown"]


ROLES = tuple(dict.fromkeys(role for table in _BY_FAMILY.values() for role in table))


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
