"""Diagnosis of the real TRL runs (tests/fixtures/real_runs/README.md says how they were made: trainer_state log_history
with raw TRL keys, and Post-Training Toolkit's metrics.jsonl with its renamed keys and timestamps)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rules_fakerun import diagnose, records_from_ptt, records_from_trainer_state  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "rules"


def diagnosed(run: str, source: str = "trainer_state"):
    trainer = run.split("_")[0]
    records, facts = records_from_trainer_state(FIXTURES / run / "trainer_state.json")
    if source == "ptt":
        records = records_from_ptt(FIXTURES / run / "metrics.jsonl")
    return diagnose(trainer, records, {**facts, "trainer": trainer}).findings


def test_dpo_stuck_gets_one_high_no_signal_finding_naming_the_zero_learning_rate():
    findings = diagnosed("dpo_stuck")
    assert [(f.rule_id, f.severity) for f in findings] == [("dpo_no_signal", "high")]
    (finding,) = findings
    assert finding.active and finding.first_step == 10 and finding.last_step == 80
    assert "0.6931" in finding.message and "Likely cause: learning_rate is 0" in finding.message
    assert finding.action.startswith("Set learning_rate > 0")


def test_without_the_learning_rate_dpo_stuck_names_the_next_provable_cause():
    (finding,) = diagnosed("dpo_stuck", "ptt")  # PTT's metrics.jsonl does not keep learning_rate
    assert finding.rule_id == "dpo_no_signal"
    assert finding.cause.startswith("every margin is exactly 0")


def test_grpo_small_reward_gained_far_from_the_reference_is_high():
    """Reward 0.16 -> 0.98 while per-token KL reaches 7.4 with beta 0.04: a policy far from where its
    reward is trustworthy (high), its completions all clipped and its entropy down 45% (medium)."""
    findings = {f.rule_id: f for f in diagnosed("grpo_small")}
    assert {(rule, f.severity) for rule, f in findings.items()} == {
        ("reward_hacking", "high"), ("length_clipped", "medium"), ("entropy_drop", "medium")
    }
    assert findings["reward_hacking"].first_step == 22 and findings["entropy_drop"].first_step == 37
    assert "45%" in findings["entropy_drop"].message


@pytest.mark.parametrize("source", ["trainer_state", "ptt"])
def test_sft_small_gets_no_medium_or_worse(source):
    assert [f.rule_id for f in diagnosed("sft_small", source) if f.severity != "low"] == []


@pytest.mark.parametrize("source", ["trainer_state", "ptt"])
def test_dpo_crash_learning_briefly_gets_no_high_from_noise(source):
    assert [f for f in diagnosed("dpo_crash", source) if f.severity in ("critical", "high")] == []
