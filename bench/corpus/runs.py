"""The corpus: one spec per run (trainer, config overrides, data, reward, injected fault).

Defaults (train.py): logging_steps=1, report_to="tensorboard", save_strategy="steps", save_steps=25,
save_total_limit=1, batch 8, seed 0, lr schedule linear to 0, 256 training rows (data seed 1); an eval
set of 32 rows when eval_strategy is set. Data (assets.py): "pairs" (preference pairs, 20% of labels
flipped), "noise_pairs", "unpaired" (KTO), "sft", "sft_noise", "prompts".
Faults: nan / crash / hang / slow (callbacks in train.py), sigterm / sigkill (sent by make_corpus.py once
metrics.jsonl reaches the step), frozen=True (every weight frozen, an unattached adapter trainable).
"""

RUNS: dict[str, dict] = {}


def run(name: str, trainer: str, **spec) -> None:
    RUNS[name] = {"trainer": trainer, **spec}


EVAL = dict(eval_strategy="steps", eval_steps=20)
ONLINE = dict(per_device_train_batch_size=32, num_generations=8, max_completion_length=12)

# ---- DPO: healthy --------------------------------------------------------------------------------
run("dpo_healthy", "dpo", args=dict(learning_rate=5e-4, beta=0.1, max_steps=150, **EVAL))
run("dpo_healthy_beta05_bs16", "dpo", args=dict(learning_rate=2e-4, beta=0.5, max_steps=120, per_device_train_batch_size=16, seed=1))
run("dpo_healthy_slow_lr", "dpo", data_seed=2, args=dict(learning_rate=5e-5, beta=0.1, max_steps=160, seed=2, warmup_steps=10))
run("dpo_healthy_logging5", "dpo", args=dict(learning_rate=3e-4, beta=0.1, max_steps=400, logging_steps=5, save_steps=100,
                                             disable_tqdm=True, eval_strategy="steps", eval_steps=50))
run("dpo_hinge_healthy", "dpo", args=dict(learning_rate=5e-4, beta=0.1, max_steps=120, loss_type="hinge"))
run("dpo_ipo_healthy", "dpo", args=dict(learning_rate=3e-4, beta=0.5, max_steps=120, loss_type="ipo"))
run("dpo_robust_healthy", "dpo", args=dict(learning_rate=5e-4, beta=0.1, max_steps=100, loss_type="robust", label_smoothing=0.2))
# ---- DPO: no learning signal ---------------------------------------------------------------------
run("dpo_lr0", "dpo", args=dict(learning_rate=0.0, beta=0.1, max_steps=80))
run("dpo_frozen", "dpo", frozen=True, args=dict(learning_rate=5e-4, beta=0.1, max_steps=80))
run("dpo_hinge_lr0", "dpo", args=dict(learning_rate=0.0, beta=0.1, max_steps=80, loss_type="hinge"))
run("dpo_ipo_lr0", "dpo", args=dict(learning_rate=0.0, beta=0.5, max_steps=80, loss_type="ipo"))
# ---- DPO: too much learning ----------------------------------------------------------------------
run("dpo_lr_too_high", "dpo", args=dict(learning_rate=0.5, beta=1.0, max_steps=100, lr_scheduler_type="constant"))
run("dpo_overtrained", "dpo", train_size=64, args=dict(learning_rate=3e-3, beta=0.1, max_steps=1500, logging_steps=10,
                                                      lr_scheduler_type="constant", save_steps=300))
run("dpo_overfit_eval", "dpo", data="noise_pairs", train_size=64, eval_size=64,
    args=dict(learning_rate=1e-3, beta=0.1, max_steps=200, lr_scheduler_type="constant", eval_strategy="steps", eval_steps=10))
# ---- DPO: broken process -------------------------------------------------------------------------
run("dpo_nan_filtered", "dpo", fault=dict(kind="nan", step=40), args=dict(learning_rate=5e-4, beta=0.1, max_steps=80))
run("dpo_crash", "dpo", fault=dict(kind="crash", step=45), args=dict(learning_rate=5e-4, beta=0.1, max_steps=100))
run("dpo_sigterm", "dpo", fault=dict(kind="sigterm", step=60), args=dict(learning_rate=5e-4, beta=0.1, max_steps=150))
run("dpo_sigkill", "dpo", fault=dict(kind="sigkill", step=60), args=dict(learning_rate=5e-4, beta=0.1, max_steps=150))
run("dpo_slowdown", "dpo", fault=dict(kind="slow", step=60, seconds=0.3), args=dict(learning_rate=5e-4, beta=0.1, max_steps=100))
run("dpo_hang", "dpo", fault=dict(kind="hang", step=50, seconds=240), args=dict(learning_rate=5e-4, beta=0.1, max_steps=150))

# ---- KTO -----------------------------------------------------------------------------------------
run("kto_healthy", "kto", args=dict(learning_rate=5e-4, beta=0.1, max_steps=150, **EVAL))
run("kto_healthy_beta03_seed1", "kto", data_seed=3, args=dict(learning_rate=3e-4, beta=0.3, max_steps=120, seed=1,
                                                            per_device_train_batch_size=16))
run("kto_lr0", "kto", args=dict(learning_rate=0.0, beta=0.1, max_steps=80))
run("kto_frozen", "kto", frozen=True, args=dict(learning_rate=5e-4, beta=0.1, max_steps=80))

# ---- SFT -----------------------------------------------------------------------------------------
run("sft_healthy", "sft", args=dict(learning_rate=1e-3, max_steps=150, **EVAL))
run("sft_healthy_bs4_seed3", "sft", data_seed=3, args=dict(learning_rate=5e-4, max_steps=120, per_device_train_batch_size=4,
                                                         seed=3, disable_tqdm=True))
run("sft_healthy_logging10", "sft", args=dict(learning_rate=5e-4, max_steps=600, logging_steps=10, save_steps=200,
                                              warmup_steps=50, lr_scheduler_type="cosine"))
run("sft_overfit_eval", "sft", data="sft_noise", train_size=32, eval_size=64,
    args=dict(learning_rate=2e-3, max_steps=250, lr_scheduler_type="constant", eval_strategy="steps", eval_steps=10))
run("sft_nan_unfiltered", "sft", fault=dict(kind="nan", step=50), args=dict(learning_rate=1e-3, max_steps=100,
                                                                          logging_nan_inf_filter=False))
run("sft_junk_rows", "sft", data="sft_with_junk", args=dict(learning_rate=1e-3, max_steps=200))
run("sft_sigkill", "sft", fault=dict(kind="sigkill", step=70), args=dict(learning_rate=1e-3, max_steps=200))

# ---- GRPO ----------------------------------------------------------------------------------------
run("grpo_healthy", "grpo", reward="kind_words", args=dict(learning_rate=3e-4, beta=0.04, max_steps=100, **ONLINE))
run("grpo_healthy_no_kl_seed1", "grpo", reward="mentions_kind", args=dict(learning_rate=2e-4, max_steps=100, seed=1, **ONLINE))
run("grpo_constant_reward", "grpo", reward="constant", args=dict(learning_rate=3e-4, beta=0.04, max_steps=80, **ONLINE))
run("grpo_sparse_reward", "grpo", reward="exact_answer", args=dict(learning_rate=3e-4, beta=0.04, max_steps=80, **ONLINE))
run("grpo_reward_hacking", "grpo", reward="happy_count", args=dict(learning_rate=5e-4, beta=0.04, max_steps=200, **ONLINE))
run("grpo_reward_hacking_fast", "grpo", reward="happy_count", args=dict(learning_rate=3e-3, beta=0.04, max_steps=100, **ONLINE))
run("grpo_entropy_collapse", "grpo", reward="happy_count", args=dict(learning_rate=1e-3, beta=0.04, max_steps=150, **ONLINE))
run("grpo_clipped", "grpo", reward="kind_words",
    args=dict(learning_rate=3e-4, beta=0.04, max_steps=80, **{**ONLINE, "max_completion_length": 4}))
run("grpo_length_reward", "grpo", reward="length_reward", args=dict(learning_rate=1e-3, beta=0.04, max_steps=120, **ONLINE))
run("grpo_sigterm", "grpo", reward="kind_words", fault=dict(kind="sigterm", step=40),
    args=dict(learning_rate=3e-4, beta=0.04, max_steps=100, **ONLINE))
run("grpo_nan_crash", "grpo", reward="kind_words", fault=dict(kind="nan", step=30),
    args=dict(learning_rate=3e-4, beta=0.04, max_steps=60, **ONLINE))

# ---- RLOO ----------------------------------------------------------------------------------------
run("rloo_healthy", "rloo", reward="kind_words", args=dict(learning_rate=3e-4, max_steps=100, **ONLINE))
run("rloo_constant_reward", "rloo", reward="constant", args=dict(learning_rate=3e-4, max_steps=80, **ONLINE))
run("rloo_reward_hacking", "rloo", reward="happy_count", args=dict(learning_rate=3e-3, max_steps=120, **ONLINE))

# ---- Reward model --------------------------------------------------------------------------------
run("reward_healthy", "reward", args=dict(learning_rate=5e-4, max_steps=120, **EVAL))
run("reward_healthy_bs16_seed1", "reward", data_seed=4, args=dict(learning_rate=3e-4, max_steps=100, per_device_train_batch_size=16, seed=1))

# ---- ORPO / CPO ----------------------------------------------------------------------------------
run("orpo_healthy", "orpo", args=dict(learning_rate=5e-4, beta=0.1, max_steps=150, **EVAL))
run("cpo_healthy", "cpo", args=dict(learning_rate=5e-4, beta=0.1, max_steps=150))
run("cpo_lr0", "cpo", args=dict(learning_rate=0.0, beta=0.1, max_steps=150))

# ---- Online DPO ----------------------------------------------------------------------------------
run("online_dpo_healthy", "online_dpo", reward="kind_words", args=dict(learning_rate=3e-4, beta=0.1, max_steps=100, max_new_tokens=12))
run("online_dpo_lr_high", "online_dpo", reward="happy_count", args=dict(learning_rate=3e-3, beta=0.1, max_steps=120, max_new_tokens=12))
