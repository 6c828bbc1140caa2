"""Synthetic but realistic metric streams of post-training runs, healthy and failing.

`simulate(trainer, scenario, steps, seed)` returns a SimulatedRun: records with the raw keys TRL 1.x
logs for that trainer (`loss`, `rewards/accuracies`, `reward_std`, `objective/kl`, ...), the run's
facts (trainer, beta, loss_type, max_steps, config) and, for failure scenarios, the step where the
failure starts. `SCENARIOS[trainer]` lists the scenarios of each trainer family with the rule ids
expected to flag them. Everything is drawn from a seeded numpy Generator, vectorised over steps.

Magnitudes follow the real TRL runs in this project and published TRL runs: DPO loss starts at
exactly ln 2 (policy == reference at step 1), falls to 0.3-0.6 while reward accuracy climbs from
0.5 to 0.7-0.9 and margins grow; per-step batch statistics are computed from simulated per-pair
margins, so accuracies are quantised in 1/batch steps. GRPO rewards come from simulated groups of
completions (prompt difficulty ~ Beta), so reward_std and frac_reward_zero_std behave as logged;
KL starts at 0 and stays small with beta 0.04, entropy falls slowly. PPO logs TRL's PPOTrainer keys
(objective/*, policy/*, loss/*, val/*, lr), KTO starts at 0.5, SFT loss decays exponentially with
heteroscedastic batch noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlhf_tui.core.records import Record, Update

_FROM_START = frozenset({"no_signal", "random_labels", "plateau"})


@dataclass(frozen=True)
class Scenario:
    """description: what happens; flags: rule ids of which at least one should flag it (empty when healthy)."""

    description: str
    flags: tuple[str, ...] = ()


@dataclass
class SimulatedRun:
    trainer: str
    scenario: str
    seed: int
    onset: int | None  # the step at which the failure starts, None when healthy
    records: list[Record]
    facts: dict[str, Any] = field(default_factory=dict)

    def update(self) -> Update:
        """The whole run as one reader Update (a finished run)."""
        return Update(records=list(self.records), facts=dict(self.facts), finished=True)


_COMMON = {
    "healthy": Scenario("noisy but learning, realistic magnitudes"),
    "nan": Scenario(
        "grad_norm becomes NaN mid-run; the logged loss stays finite (logging_nan_inf_filter)",
        ("nonfinite_grad_norm",),
    ),
    "grad_explosion": Scenario("grad_norm grows 100x within a few dozen steps", ("grad_explosion",)),
    "lr_zero": Scenario("the schedule reaches 0 at mid-run and learning stops", ("lr_zero",)),
    "slowdown": Scenario("steps become 4x slower mid-run", ("throughput_collapse",)),
}
_PREFERENCE = {
    "no_signal": Scenario("learning rate 0 from the start (like dpo_stuck)", ("dpo_no_signal",)),
}

SCENARIOS: dict[str, dict[str, Scenario]] = {
    "dpo": {
        **_COMMON,
        **_PREFERENCE,
        "random_labels": Scenario(
            "labels carry no preference: loss hovers at ln 2, accuracy at 0.5", ("dpo_no_signal",)
        ),
        "margin_collapse": Scenario("margins grow, then collapse back towards 0", ("margin_collapse",)),
        "likelihood_displacement": Scenario(
            "chosen rewards fall with rejected ones (Razin et al. 2024)", ("likelihood_displacement",)
        ),
        "volatile_win_rate": Scenario(
            "unstable updates: accuracy swings far beyond batch noise", ("winrate_volatility",)
        ),
        "overfit": Scenario("train loss keeps falling while eval loss rises", ("train_eval_divergence",)),
    },
    "kto": {**_COMMON, **_PREFERENCE},
    "orpo": {
        **_COMMON,
        "no_signal": Scenario(
            "log odds stay at 0: no preference is learnt (NLL still falls)", ("margin_flat", "accuracy_at_chance")
        ),
    },
    "grpo": {
        **_COMMON,
        "variance_collapse": Scenario(
            "every group gets identical rewards: reward_std -> 0", ("reward_variance_collapse",)
        ),
        "kl_runaway": Scenario("KL grows exponentially while reward stalls", ("kl_runaway",)),
        "reward_hacking": Scenario("reward jumps while KL grows 30x", ("reward_hacking",)),
        "entropy_collapse": Scenario("entropy falls to a tenth of its start", ("entropy_collapse",)),
        "length_clipping": Scenario("completions grow until most hit max_completion_length", ("length_clipped",)),
        "length_drift": Scenario("completions grow 3x (still under the limit)", ("length_drift",)),
        "clip_ratio_high": Scenario("multi-iteration updates clip 40% of tokens", ("clip_ratio_high",)),
        "is_ratio_drift": Scenario("vLLM sampler drifts from the trained policy", ("is_ratio_off",)),
    },
    "ppo": {
        **{name: s for name, s in _COMMON.items() if name not in ("nan", "grad_explosion")},
        "nan": Scenario("the value and policy losses become NaN", ("nonfinite_loss",)),
        "kl_runaway": Scenario("objective/kl grows exponentially", ("kl_runaway",)),
        "reward_hacking": Scenario("scores jump while objective/kl grows 20x", ("reward_hacking",)),
        "value_divergence": Scenario("the value loss climbs 10x", ("value_loss_divergence",)),
        "approx_kl_spikes": Scenario("repeated policy-update spikes in approx KL", ("approx_kl_spikes",)),
        "clip_ratio_high": Scenario("policy/clipfrac_avg above 0.4", ("clip_ratio_high",)),
        "entropy_collapse": Scenario("policy entropy falls to a tenth", ("entropy_collapse",)),
    },
    "sft": {
        **_COMMON,
        "nan_loss": Scenario("loss and grad_norm NaN (logging_nan_inf_filter off)", ("nonfinite_loss",)),
        "single_spike": Scenario("one bad batch: a single loss spike", ("sft_loss_spike",)),
        "loss_spikes": Scenario("repeated bad batches", ("sft_loss_spikes",)),
        "divergence": Scenario("loss climbs steadily after mid-run", ("loss_rising",)),
        "plateau": Scenario("loss flat from the first steps with most of training left", ("sft_loss_plateau",)),
        "overfit": Scenario("train loss keeps falling while eval loss rises", ("train_eval_divergence",)),
    },
}
SCENARIOS["rloo"] = dict(SCENARIOS["grpo"])
TRAINERS = tuple(SCENARIOS)


def simulate(trainer: str, scenario: str = "healthy", steps: int = 300, seed: int = 0) -> SimulatedRun:
    """A simulated run of `steps` logged steps (logging_steps=1) of `trainer` in `scenario`."""
    if trainer not in SCENARIOS or scenario not in SCENARIOS[trainer]:
        known = ", ".join(f"{t}: {sorted(s)}" for t, s in SCENARIOS.items())
        raise ValueError(f"unknown trainer/scenario {trainer}/{scenario}; known: {known}")
    if steps < 2:
        raise ValueError("steps must be at least 2")
    sim = _Sim(trainer, scenario, steps, seed)
    _FAMILIES[trainer](sim)
    return sim.finish()


# ---------------------------------------------------------------------------------------------


class _Sim:
    """The shared machinery of one simulated run: schedule, learning progress, timing, records."""

    def __init__(self, trainer: str, scenario: str, steps: int, seed: int) -> None:
        self.trainer = trainer
        self.scenario = scenario
        self.seed = seed
        self.rng = np.random.default_rng([seed, sum(map(ord, trainer)), sum(map(ord, scenario))])
        self.T = steps
        self.t = np.arange(1, steps + 1)
        self.onset = None if scenario == "healthy" else 1 if scenario in _FROM_START else max(2, int(0.4 * steps))
        self.keys: dict[str, np.ndarray] = {}
        self.evals: dict[str, np.ndarray] = {}
        self.eval_steps = np.zeros(0, dtype=np.int64)
        self.config: dict[str, Any] = {"max_steps": steps, "logging_steps": 1, "bf16": True, "fp16": False}
        self.facts: dict[str, Any] = {
            "trainer": trainer, "trainer_evidence": "header", "max_steps": steps, "logging_steps": 1
        }
        self.step_seconds = self.rng.uniform(0.3, 3.0)

    # -- schedule and progress -------------------------------------------------------------

    def schedule(self, peak: float, kinds=("linear", "cosine", "constant"), warmups=(0.0, 0.03, 0.1)) -> np.ndarray:
        kind = str(self.rng.choice(kinds))
        warmup_ratio = float(self.rng.choice(warmups))
        horizon = self.T
        if self.scenario == "lr_zero":
            kind, horizon = "linear", self.onset
        if self.scenario == "no_signal" and self.trainer in ("dpo", "kto"):
            peak = 0.0
        warm = max(int(warmup_ratio * horizon), 0)
        t = self.t.astype(np.float64)
        rise = np.where(t < warm, t / max(warm, 1), 1.0)
        frac = np.clip((t - warm) / max(horizon - warm, 1), 0.0, 1.0)
        if kind == "linear":
            decay = 1.0 - frac
        elif kind == "cosine":
            decay = 0.5 * (1.0 + np.cos(np.pi * frac))
        else:
            decay = np.ones_like(t)
        peak = float(f"{peak:.3g}")  # as a person writes it in the training arguments
        lr = peak * rise * decay
        self.config.update(learning_rate=peak, lr_scheduler_type=kind, warmup_ratio=warmup_ratio)
        self.peak_lr = peak
        return lr

    def progress(self, lr: np.ndarray) -> np.ndarray:
        """Learning progress in [0, 1]: the learning rate integrated so far over a full-rate run."""
        if self.peak_lr <= 0:
            return np.zeros(self.T)
        return np.cumsum(lr) / (self.peak_lr * self.T)

    @staticmethod
    def curve(u: np.ndarray, tau: float) -> np.ndarray:
        """A saturating learning curve: 0 at u=0, 1 at u=1."""
        return (1.0 - np.exp(-u / tau)) / (1.0 - math.exp(-1.0 / tau))

    def after(self, ramp: float) -> np.ndarray:
        """0 before the onset, rising linearly to 1 over `ramp` x steps after it."""
        if self.onset is None:
            return np.zeros(self.T)
        return np.clip((self.t - self.onset) / max(ramp * self.T, 1.0), 0.0, 1.0)

    def lognormal(self, sigma: float, size=None) -> np.ndarray:
        return np.exp(self.rng.normal(0.0, sigma, size if size is not None else self.T))

    def grad_norm(self, base: np.ndarray) -> np.ndarray:
        """Realistic grad_norm around `base`: lognormal noise and rare 1.5-3x spikes; plus the scenarios."""
        g = base * self.lognormal(0.2)
        spikes = self.rng.random(self.T) < 0.01
        g[spikes] *= self.rng.uniform(1.5, 3.0, spikes.sum())
        if self.scenario == "grad_explosion":
            g *= np.exp(np.minimum((self.t - self.onset).clip(0) / 6.0, 6.0))
        if self.scenario == "nan":
            g[self.t >= self.onset] = np.nan
        return g

    def batch(self, choices=(8, 16, 32, 64)) -> int:
        n = int(self.rng.choice(choices))
        per_device = int(self.rng.choice([d for d in (1, 2, 4, 8, 16) if d <= n and n % d == 0]))
        self.config.update(per_device_train_batch_size=per_device, gradient_accumulation_steps=n // per_device)
        return n

    def evaluate_every(self, every: int) -> np.ndarray:
        """Schedule evaluations every `every` steps; returns their 0-based step indices.

        The caller fills self.evals with one value per evaluation for each eval key.
        """
        self.eval_steps = self.t[every - 1 :: every]
        self.config.update(eval_strategy="steps", eval_steps=every)
        return self.eval_steps - 1

    # -- records ---------------------------------------------------------------------------

    def finish(self) -> SimulatedRun:
        seconds = self.step_seconds * self.lognormal(0.06)
        seconds[0] *= self.rng.uniform(2.0, 6.0)
        save_every = int(self.rng.choice([50, 100, 250]))
        seconds[self.t % save_every == 0] += self.rng.uniform(3.0, 15.0) * self.step_seconds
        if self.scenario == "slowdown":
            seconds[self.t >= self.onset] *= 4.0
        if "step_time" in self.keys:
            self.keys["step_time"] = seconds.copy()
        seconds[np.isin(self.t, self.eval_steps)] += self.rng.uniform(2.0, 10.0) * self.step_seconds
        times = 1.76e9 + self.seed * 1e5 + np.cumsum(np.round(seconds, 3))

        keys = sorted(self.keys)
        table = logged_precision(np.column_stack([self.keys[k] for k in keys])).tolist()
        records = [
            Record(int(step), float(time), dict(zip(keys, row)))
            for step, time, row in zip(self.t.tolist(), times.tolist(), table)
        ]
        if len(self.eval_steps):
            eval_keys = sorted(self.evals)
            eval_table = logged_precision(np.column_stack([self.evals[k] for k in eval_keys])).tolist()
            evals = {
                int(step): Record(int(step), float(times[step - 1] + 1.0), dict(zip(eval_keys, row)), "eval")
                for step, row in zip(self.eval_steps.tolist(), eval_table)
            }
            records = [r for record in records for r in (record, evals.get(record.step)) if r is not None]
        self.facts["config"] = dict(self.config)
        return SimulatedRun(self.trainer, self.scenario, self.seed, self.onset, records, self.facts)


def logged_precision(values: np.ndarray) -> np.ndarray:
    """Metric values as a trainer logs them: the float32 of a tensor's `.item()`.

    This also makes a simulated run the same bytes on every machine: numpy's vectorised exp, log and
    cos differ in the last bit between CPUs (AVX-512 and AVX2 kernels), and float32 rounds that away;
    whole milliseconds do the same for the clock.
    """
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Trainer families


def _dpo(sim: _Sim) -> None:
    rng, T, scenario = sim.rng, sim.T, sim.scenario
    beta = float(rng.choice([0.05, 0.1, 0.1, 0.1, 0.2, 0.3, 0.5]))
    loss_type = str(rng.choice(["sigmoid"] * 6 + ["ipo", "hinge"]))
    n = sim.batch((32, 64) if scenario == "volatile_win_rate" else (8, 16, 32, 64))
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(2e-7), np.log(5e-6)))))
    u = sim.progress(lr)
    # Per-pair margins spread out as they grow, but more slowly than their mean, so accuracy climbs
    # to 0.7-0.9 and the loss keeps falling; IPO regresses the log-ratio margin to 1/(2 beta), a
    # beta-scaled margin of 0.5.
    if loss_type == "ipo":
        final_margin, spread_share, spread_power = rng.uniform(0.3, 0.5), rng.uniform(0.2, 0.5), 1.0
    else:
        final_margin, spread_share, spread_power = rng.uniform(0.8, 3.5), rng.uniform(1.0, 1.6), 0.7
    mu = final_margin * sim.curve(u, rng.uniform(0.15, 0.5))
    spread = 0.02 + spread_share * mu**spread_power
    chosen_share = np.full(T, rng.uniform(-0.3, 0.5))

    if scenario == "no_signal":
        spread = np.zeros(T)
    elif scenario == "random_labels":
        mu = np.zeros(T)
        spread = 0.02 + 0.15 * u
    elif scenario == "margin_collapse":
        peak = mu[sim.onset - 1]
        mu = np.where(sim.t < sim.onset, mu, peak * (0.1 + 0.9 * np.exp(-(sim.t - sim.onset) / (0.1 * T))))
        spread = 0.02 + spread_share * np.maximum(mu, peak * 0.5) ** spread_power
    elif scenario == "likelihood_displacement":
        chosen_share = chosen_share + (-2.2 - chosen_share) * sim.after(0.2)
    elif scenario == "volatile_win_rate":
        wobble = np.where(sim.t >= sim.onset, rng.uniform(-1.0, 3.0, T), 1.0)
        mu = mu * wobble
    elif scenario == "grad_explosion":
        mu = mu * (1.0 - 0.8 * sim.after(0.15))
    elif scenario == "overfit":
        mu = mu + 2.0 * final_margin * sim.after(0.6)

    margins = mu[:, None] + spread[:, None] * rng.standard_normal((T, n))
    margins[0] = 0.0  # step 1: the policy is the reference
    chosen = chosen_share[:, None] * margins + 0.3 * spread[:, None] * rng.standard_normal((T, n))
    chosen[0] = 0.0
    rejected = chosen - margins
    loss = _preference_loss(margins, loss_type, beta).mean(axis=1)
    accuracy = (margins > 0).mean(axis=1)

    base_chosen, base_rejected = rng.uniform(-400, -60), rng.uniform(-400, -60)
    keys = sim.keys
    keys["loss"] = loss
    keys["rewards/accuracies"] = accuracy
    keys["rewards/margins"] = margins.mean(axis=1)
    keys["rewards/chosen"] = chosen.mean(axis=1)
    keys["rewards/rejected"] = rejected.mean(axis=1)
    keys["logps/chosen"] = base_chosen * (1 + 0.05 * rng.standard_normal(T)) + chosen.mean(axis=1) / beta
    keys["logps/rejected"] = base_rejected * (1 + 0.05 * rng.standard_normal(T)) + rejected.mean(axis=1) / beta
    keys["logits/chosen"] = rng.uniform(-2, 2) + 0.3 * rng.standard_normal(T)
    keys["logits/rejected"] = keys["logits/chosen"] + 0.05 * rng.standard_normal(T)
    keys["entropy"] = rng.uniform(0.8, 3.0) * (1 + 0.01 * rng.standard_normal(T))
    keys["learning_rate"] = lr
    tokens = n * 2 * rng.uniform(150, 600)
    keys["num_tokens"] = np.cumsum(np.full(T, tokens)).round()
    keys["epoch"] = sim.t * n / rng.uniform(5_000, 60_000)
    signal = 1.0 / (1.0 + np.exp(np.clip(margins, -30, 30)))  # sigmoid(-margin): DPO's gradient weight
    keys["grad_norm"] = sim.grad_norm(rng.uniform(0.5, 30) * (0.3 + 1.4 * signal.mean(axis=1)))
    if scenario == "nan":
        broken = sim.t >= sim.onset
        for key in ("rewards/margins", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
            keys[key][broken] = np.nan
        keys["rewards/accuracies"][broken] = 0.0
        keys["loss"][broken] = loss[sim.onset - 2]

    if scenario == "overfit" or rng.random() < 0.5:
        at = sim.evaluate_every(int(rng.choice([25, 50])))
        eval_mu = mu[at]
        if scenario == "overfit":
            eval_mu = np.where(sim.t[at] < sim.onset, eval_mu, mu[sim.onset - 1] * (1 - 0.8 * sim.after(0.6)[at]))
        eval_spread = 0.02 + spread_share * np.abs(eval_mu) ** spread_power + 0.3 * (mu[at] - eval_mu)
        eval_set = rng.standard_normal((1, 1024))  # the same pairs at every evaluation
        eval_margins = eval_mu[:, None] + eval_spread[:, None] * eval_set
        sim.evals = {
            "eval_loss": _preference_loss(eval_margins, loss_type, beta).mean(axis=1),
            "eval_rewards/accuracies": (eval_margins > 0).mean(axis=1),
            "eval_rewards/margins": eval_margins.mean(axis=1),
            "eval_runtime": np.full(len(at), rng.uniform(10, 60)),
        }
    sim.facts.update(beta=beta, loss_type=loss_type)
    sim.config.update(beta=beta, loss_type=loss_type, max_length=1024)


def _preference_loss(margins: np.ndarray, loss_type: str, beta: float) -> np.ndarray:
    """TRL's per-pair DPO loss from beta-scaled margins."""
    if loss_type == "hinge":
        return np.maximum(0.0, 1.0 - margins)
    if loss_type == "ipo":
        return (margins / beta - 1.0 / (2.0 * beta)) ** 2
    return np.logaddexp(0.0, -margins)


def _kto(sim: _Sim) -> None:
    rng, T = sim.rng, sim.T
    beta = float(rng.choice([0.1, 0.1, 0.2, 0.5]))
    n = sim.batch()
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(5e-7), np.log(5e-6)))))
    u = sim.progress(lr)
    shape = sim.curve(u, rng.uniform(0.15, 0.5))
    chosen_level = rng.uniform(0.3, 2.0) * shape
    rejected_level = -rng.uniform(0.5, 3.0) * shape
    kl = np.maximum(rng.uniform(0.05, 1.0) * shape * (1 + 0.2 * rng.standard_normal(T)), 0.0)
    spread = np.zeros(T) if sim.scenario == "no_signal" else 0.05 + 0.8 * shape
    desirable = rng.random((T, n)) < 0.5
    rewards = np.where(desirable, chosen_level[:, None], rejected_level[:, None])
    rewards = rewards + spread[:, None] * rng.standard_normal((T, n))
    rewards[0] = 0.0
    kl[0] = 0.0
    sig = 1.0 / (1.0 + np.exp(-(rewards - kl[:, None])))
    losses = np.where(desirable, 1.0 - sig, sig)
    count_chosen = np.maximum(desirable.sum(axis=1), 1)
    count_rejected = np.maximum((~desirable).sum(axis=1), 1)
    chosen = np.where(desirable, rewards, 0.0).sum(axis=1) / count_chosen
    rejected = np.where(~desirable, rewards, 0.0).sum(axis=1) / count_rejected
    keys = sim.keys
    keys["loss"] = losses.mean(axis=1)
    keys["kl"] = kl
    keys["rewards/chosen"] = chosen
    keys["rewards/rejected"] = rejected
    keys["rewards/margins"] = chosen - rejected
    keys["logps/chosen"] = rng.uniform(-300, -60) + chosen / beta
    keys["logps/rejected"] = rng.uniform(-300, -60) + rejected / beta
    keys["logits/chosen"] = rng.uniform(-2, 2) + 0.3 * rng.standard_normal(T)
    keys["logits/rejected"] = keys["logits/chosen"] + 0.05 * rng.standard_normal(T)
    keys["learning_rate"] = lr
    keys["epoch"] = sim.t * n / rng.uniform(5_000, 60_000)
    keys["grad_norm"] = sim.grad_norm(rng.uniform(0.5, 20) * (0.4 + 1.2 * losses.mean(axis=1)))
    if sim.scenario == "nan":
        broken = sim.t >= sim.onset
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl"):
            keys[key][broken] = np.nan
        keys["loss"][broken] = keys["loss"][sim.onset - 2]
    sim.facts.update(beta=beta, loss_type="kto")
    sim.config.update(beta=beta, loss_type="kto", desirable_weight=1.0, undesirable_weight=1.0)


def _orpo(sim: _Sim) -> None:
    rng, T = sim.rng, sim.T
    beta = 0.1
    n = sim.batch()
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(2e-6), np.log(2e-5)))))
    u = sim.progress(lr)
    shape = sim.curve(u, rng.uniform(0.15, 0.5))
    nll0 = rng.uniform(1.5, 3.0)
    nll = nll0 * (1 - rng.uniform(0.2, 0.5) * sim.curve(u, rng.uniform(0.05, 0.3)))
    nll = nll * (1 + 0.03 * rng.standard_normal(T))
    odds_level = 0.0 if sim.scenario == "no_signal" else rng.uniform(0.5, 3.0)
    log_odds = odds_level * shape[:, None] + (0.3 + 0.5 * shape[:, None]) * rng.standard_normal((T, n))
    log_odds[0] = rng.normal(0, 0.3, n)
    log_sig = -np.logaddexp(0.0, -log_odds)
    margins = 0.05 * log_odds
    chosen = -beta * nll * (1 + 0.02 * rng.standard_normal(T))
    keys = sim.keys
    keys["nll_loss"] = nll
    keys["log_odds_ratio"] = log_sig.mean(axis=1)
    keys["log_odds_chosen"] = log_odds.mean(axis=1)
    keys["loss"] = nll - beta * log_sig.mean(axis=1)
    keys["rewards/accuracies"] = (margins > 0).mean(axis=1)
    keys["rewards/margins"] = margins.mean(axis=1)
    keys["rewards/chosen"] = chosen
    keys["rewards/rejected"] = chosen - margins.mean(axis=1)
    keys["logps/chosen"] = chosen / beta
    keys["logps/rejected"] = (chosen - margins.mean(axis=1)) / beta
    keys["learning_rate"] = lr
    keys["epoch"] = sim.t * n / rng.uniform(5_000, 60_000)
    keys["grad_norm"] = sim.grad_norm(rng.uniform(0.5, 10) * (0.6 + 0.4 * nll / nll0))
    if sim.scenario == "nan":
        broken = sim.t >= sim.onset
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "log_odds_ratio"):
            keys[key][broken] = np.nan
        keys["loss"][broken] = keys["loss"][sim.onset - 2]
    sim.facts.update(beta=beta)
    sim.config.update(beta=beta)


def _grpo(sim: _Sim) -> None:
    rng, T, scenario = sim.rng, sim.T, sim.scenario
    generations = int(rng.choice([4, 8, 16]))
    groups = int(rng.choice([4, 8, 16, 32]))
    beta = float(rng.choice([0.0, 0.04, 0.04, 0.01, 0.1]))
    if scenario in ("kl_runaway", "reward_hacking") and beta == 0.0:
        beta = 0.04
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(5e-7), np.log(5e-6)))), warmups=(0.0, 0.03, 0.1))
    u = sim.progress(lr)
    shape = sim.curve(u, rng.uniform(0.2, 0.6))
    p0 = rng.uniform(0.05, 0.5)
    p = p0 + (min(p0 + rng.uniform(0.1, 0.35), 0.8) - p0) * shape
    concentration = np.full(T, rng.uniform(2.0, 8.0))
    kl = rng.uniform(0.005, 0.12) * u ** rng.uniform(0.7, 1.5) * sim.lognormal(0.25)
    entropy = rng.uniform(0.3, 1.5) * (1 - rng.uniform(0.0, 0.3) * shape) * (1 + 0.03 * rng.standard_normal(T))
    length0 = rng.uniform(60, 500)
    length = length0 * (1 + (rng.uniform(0.75, 1.5) - 1) * shape)
    max_length = int(next(m for m in (256, 512, 1024, 2048, 4096, 8192) if m >= 2.5 * length.max()))
    iterations = int(rng.choice([1, 1, 1, 2, 4]))

    after = sim.after(0.1)
    if scenario == "variance_collapse":
        p = p + (0.97 - p) * after
        concentration = concentration + (0.05 - concentration) * after
    elif scenario == "kl_runaway":
        growth = np.expm1(np.minimum((sim.t - sim.onset) / 8.0, 10.0))
        kl = np.where(sim.t < sim.onset, kl, kl[sim.onset - 1] + 0.02 * growth)
        kl = np.minimum(kl, 30.0)
        p = np.where(sim.t < sim.onset, p, p[sim.onset - 1] * (1 - 0.3 * sim.after(0.3)))
    elif scenario == "reward_hacking":
        p = p + (0.9 - p) * sim.after(0.25)
        kl = kl + 1.5 * sim.after(0.3) ** 2
    elif scenario == "entropy_collapse":
        entropy = entropy * (1 - 0.92 * sim.after(0.3))
    elif scenario == "length_clipping":
        length = length + (max_length * 1.05 - length) * sim.after(0.3)
    elif scenario == "length_drift":
        max_length = 8192
        length = length * (1 + 2.2 * sim.after(0.5))
    elif scenario == "clip_ratio_high":
        iterations = 4

    a = np.maximum(concentration * p, 1e-3)[:, None] * np.ones((1, groups))
    b = np.maximum(concentration * (1 - p), 1e-3)[:, None] * np.ones((1, groups))
    prompt_p = rng.beta(a, b)
    correct = rng.random((T, groups, generations)) < prompt_p[:, :, None]
    rewards = correct.astype(np.float64)
    if rng.random() < 0.3:  # a format reward, met 90% of the time (always, once rewards saturate)
        format_rate = 0.9 + 0.1 * after if scenario == "variance_collapse" else np.full(T, 0.9)
        rewards = rewards + 0.2 * (rng.random((T, groups, generations)) < format_rate[:, None, None])
    group_std = rewards.std(axis=2, ddof=1)
    lengths = length[:, None, None] * np.exp(rng.normal(0, 0.35, (T, groups, generations)))
    clipped = lengths >= max_length
    lengths = np.minimum(lengths, max_length).round()

    keys = sim.keys
    keys["reward"] = rewards.mean(axis=(1, 2))
    keys["reward_std"] = group_std.mean(axis=1)
    keys["frac_reward_zero_std"] = (group_std < 1e-9).mean(axis=1)
    keys["rewards/accuracy_reward/mean"] = correct.mean(axis=(1, 2))
    keys["rewards/accuracy_reward/std"] = correct.std(axis=(1, 2), ddof=1)
    keys["entropy"] = entropy
    keys["completions/mean_length"] = lengths.mean(axis=(1, 2))
    keys["completions/min_length"] = lengths.min(axis=(1, 2))
    keys["completions/max_length"] = lengths.max(axis=(1, 2))
    keys["completions/clipped_ratio"] = clipped.mean(axis=(1, 2))
    terminated = np.where(clipped, np.nan, lengths)
    with np.errstate(invalid="ignore"):
        keys["completions/mean_terminated_length"] = np.nan_to_num(np.nanmean(terminated, axis=(1, 2)))
    if iterations == 1:
        region = np.zeros(T)
    elif scenario == "clip_ratio_high":
        region = np.where(sim.t >= sim.onset, rng.uniform(0.35, 0.5, T), rng.uniform(0.01, 0.05, T))
    else:
        region = rng.uniform(0.002, 0.05) * sim.lognormal(0.3)
    keys["clip_ratio/region_mean"] = region
    keys["clip_ratio/low_mean"] = region * 0.5
    keys["clip_ratio/high_mean"] = region * 0.5
    keys["clip_ratio/low_min"] = np.zeros(T)
    keys["clip_ratio/high_max"] = region * 2
    if beta > 0:
        kl[0] = 0.0
        keys["kl"] = kl
    keys["loss"] = beta * kl + 0.01 * rng.standard_normal(T)
    keys["learning_rate"] = lr
    keys["step_time"] = np.zeros(T)  # filled with the simulated step durations
    keys["num_tokens"] = np.cumsum(lengths.sum(axis=(1, 2)) + groups * generations * rng.uniform(50, 200))
    keys["epoch"] = sim.t * groups / rng.uniform(2_000, 20_000)
    signal = 1.0 - keys["frac_reward_zero_std"]
    keys["grad_norm"] = sim.grad_norm(rng.uniform(0.05, 1.0) * (0.1 + 0.9 * signal))
    if scenario == "is_ratio_drift" or rng.random() < 0.4:
        ratio = 1.0 + 0.01 * rng.standard_normal(T)
        if scenario == "is_ratio_drift":
            ratio = ratio - 0.45 * sim.after(0.2)
        keys["sampling/importance_sampling_ratio/mean"] = ratio
        keys["sampling/importance_sampling_ratio/min"] = ratio * 0.5
        keys["sampling/importance_sampling_ratio/max"] = ratio * 1.8
        keys["sampling/sampling_logp_difference/mean"] = np.abs(np.log(ratio)) + 0.01
    if scenario == "nan":
        broken = sim.t >= sim.onset
        for key in ("entropy", "kl"):
            if key in keys:
                keys[key][broken] = np.nan
    sim.facts.update(beta=beta)
    sim.config.update(
        beta=beta,
        num_generations=generations,
        generation_batch_size=groups * generations,
        per_device_train_batch_size=groups * generations,
        gradient_accumulation_steps=1,
        max_completion_length=max_length,
        num_iterations=iterations,
        loss_type=str(rng.choice(["dapo", "grpo", "dr_grpo"])),
    )


def _ppo(sim: _Sim) -> None:
    rng, T, scenario = sim.rng, sim.T, sim.scenario
    batch = int(rng.choice([16, 32, 64, 128]))
    kl_coef = 0.05
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-5)))), kinds=("linear",), warmups=(0.0,))
    u = sim.progress(lr)
    shape = sim.curve(u, rng.uniform(0.2, 0.6))
    scores = rng.uniform(-4, 0.5) + rng.uniform(0.5, 3.0) * shape
    noise = rng.uniform(0.2, 0.6)
    kl = rng.uniform(1.0, 12.0) * u ** rng.uniform(0.8, 1.6)
    entropy_trend = 1 - rng.uniform(0.0, 0.25) * shape
    value0 = rng.uniform(0.3, 3.0)
    value = value0 * (0.3 + 0.7 * np.exp(-u / 0.2))
    approx_base = float(np.exp(rng.uniform(np.log(0.002), np.log(0.02))))
    approx = approx_base * sim.lognormal(0.35)
    clipfrac = np.minimum(rng.uniform(0.01, 0.12) * sim.lognormal(0.25), 1.0)

    if scenario == "kl_runaway":
        growth = np.expm1(np.minimum((sim.t - sim.onset) / 8.0, 10.0))
        kl = np.where(sim.t < sim.onset, kl, kl[sim.onset - 1] + 0.5 * growth)
        kl = np.minimum(kl, 2_000.0)
        scores = np.where(sim.t < sim.onset, scores, scores[sim.onset - 1] - 1.0 * sim.after(0.3))
    elif scenario == "reward_hacking":
        scores = scores + 4.0 * sim.after(0.25)
        kl = kl + 150.0 * sim.after(0.3) ** 2
    elif scenario == "value_divergence":
        value = value * (1 + 12.0 * sim.after(0.3) ** 1.5)
    elif scenario == "approx_kl_spikes":
        spikes = (sim.t >= sim.onset) & (rng.random(T) < 0.12)
        approx[spikes] = rng.uniform(0.2, 1.0, spikes.sum())
    elif scenario == "clip_ratio_high":
        clipfrac = np.where(sim.t >= sim.onset, rng.uniform(0.4, 0.55, T), clipfrac)
    elif scenario == "entropy_collapse":
        entropy_trend = entropy_trend * (1 - 0.9 * sim.after(0.3))

    kl_logged = kl + (0.1 + 0.1 * kl) * rng.standard_normal(T)
    kl_logged[0] = 0.0
    scores_logged = scores + noise * rng.standard_normal(T)
    keys = sim.keys
    keys["objective/kl"] = kl_logged
    keys["objective/scores"] = scores_logged
    keys["objective/non_score_reward"] = -kl_coef * kl_logged
    keys["objective/rlhf_reward"] = scores_logged - kl_coef * kl_logged
    keys["objective/entropy"] = rng.uniform(20, 120) * entropy_trend * (1 + 0.03 * rng.standard_normal(T))
    keys["policy/entropy_avg"] = rng.uniform(1.0, 3.5) * entropy_trend * (1 + 0.03 * rng.standard_normal(T))
    keys["policy/approxkl_avg"] = approx
    keys["policy/clipfrac_avg"] = clipfrac
    keys["loss/policy_avg"] = -0.005 + 0.01 * rng.standard_normal(T)
    keys["loss/value_avg"] = value * sim.lognormal(0.2)
    keys["val/clipfrac_avg"] = np.clip(rng.uniform(0.1, 0.4) * sim.lognormal(0.2), 0, 1)
    keys["val/ratio"] = 1.0 + 0.004 * rng.standard_normal(T)
    keys["val/ratio_var"] = 1e-4 * sim.lognormal(0.5)
    keys["val/num_eos_tokens"] = rng.binomial(batch, 0.8, T).astype(np.float64)
    keys["lr"] = lr
    keys["episode"] = (sim.t * batch).astype(np.float64)
    keys["eps"] = np.round(batch / sim.step_seconds * sim.lognormal(0.05))
    if scenario == "nan":
        broken = sim.t >= sim.onset
        for key in ("loss/value_avg", "loss/policy_avg", "policy/approxkl_avg", "policy/entropy_avg"):
            keys[key][broken] = np.nan
    sim.config.update(
        kl_coef=kl_coef, per_device_train_batch_size=batch, gradient_accumulation_steps=1, num_ppo_epochs=4
    )


def _sft(sim: _Sim) -> None:
    rng, T, scenario = sim.rng, sim.T, sim.scenario
    n = sim.batch((8, 16, 32, 64, 128))
    lr = sim.schedule(float(np.exp(rng.uniform(np.log(5e-6), np.log(2e-4)))))
    u = sim.progress(lr)
    final = rng.uniform(0.4, 2.2)
    start = final + rng.uniform(0.5, 3.0)
    tau = rng.uniform(0.03, 0.3)
    if scenario == "plateau":
        tau = 0.004
    generalising = final + (start - final) * np.exp(-u / tau)
    clean = generalising.copy()
    if scenario == "overfit":
        clean = clean - 0.5 * final * sim.after(0.6)
    if scenario == "divergence":
        clean = clean * (1 + 1.5 * sim.after(0.3))
    loss = clean * (1 + rng.uniform(0.01, 0.05) * rng.standard_normal(T))
    mild = rng.random(T) < 0.003
    loss[mild] *= rng.uniform(1.05, 1.2, mild.sum())
    if scenario == "single_spike":
        loss[sim.onset - 1] = clean[sim.onset - 1] * 2.2
    elif scenario == "loss_spikes":
        hits = sim.onset - 1 + rng.choice(int(0.3 * T), size=5, replace=False)
        loss[hits] = clean[hits] * rng.uniform(1.6, 3.0, 5)
    keys = sim.keys
    keys["loss"] = loss
    accuracy0, accuracy_end = rng.uniform(0.2, 0.4), rng.uniform(0.5, 0.8)
    accuracy = accuracy_end - (accuracy_end - accuracy0) * np.exp(-u / tau)
    keys["mean_token_accuracy"] = accuracy + 0.01 * rng.standard_normal(T)
    keys["entropy"] = clean * rng.uniform(0.8, 1.2) * (1 + 0.02 * rng.standard_normal(T))
    keys["learning_rate"] = lr
    keys["num_tokens"] = np.cumsum(np.full(T, n * rng.uniform(200, 1500))).round()
    keys["epoch"] = sim.t * n / rng.uniform(5_000, 100_000)
    early = 1 + 2 * np.exp(-sim.t / 5.0)
    keys["grad_norm"] = sim.grad_norm(rng.uniform(0.3, 5.0) * early * (0.4 + 0.6 * np.exp(-u / 0.3)))
    if scenario == "nan_loss":
        broken = sim.t >= sim.onset
        keys["loss"][broken] = np.nan
        keys["grad_norm"][broken] = np.nan
    elif scenario == "nan":
        keys["loss"][sim.t >= sim.onset] = loss[sim.onset - 2]
    if scenario == "overfit" or rng.random() < 0.5:
        at = sim.evaluate_every(int(rng.choice([25, 50])))
        gap = rng.uniform(0.02, 0.15)
        eval_loss = generalising[at] + gap * (1 + 0.3 * u[at]) + 0.003 * rng.standard_normal(len(at))
        if scenario == "overfit":
            eval_loss = eval_loss + final * sim.after(0.5)[at]
        sim.evals = {
            "eval_loss": eval_loss,
            "eval_mean_token_accuracy": keys["mean_token_accuracy"][at] - 0.02,
            "eval_runtime": np.full(len(at), rng.uniform(10, 60)),
        }
    sim.config.update(max_length=int(rng.choice([1024, 2048, 4096])), loss_type="nll")


_FAMILIES = {"dpo": _dpo, "kto": _kto, "orpo": _orpo, "grpo": _grpo, "rloo": _grpo, "ppo": _ppo, "sft": _sft}
