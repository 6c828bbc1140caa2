"""The incremental engine: lifecycle, hysteresis, suppression, NaN, replay, and split invariance."""

import math
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.core.records import Record
from rlhf_tui.rules import Diagnostics, Rule
from rlhf_tui.rules.engine import CHUNK_POINTS, derive_facts, no_signal_loss
from rlhf_tui.simulate import SCENARIOS, simulate

sys.path.insert(0, str(Path(__file__).parent))
from rules_fakerun import NOW, RULES, FakeRun, diagnose, run_of, summary  # noqa: E402


def rule(rule_id="r", when="loss > 1", severity="medium", **fields) -> Rule:
    return Rule(id=rule_id, title=rule_id.upper(), severity=severity, when=when,
                message=fields.pop("message", "loss {loss:.1f}"), **fields)


def losses(values, start=1, key="loss"):
    return [Record(start + i, None, {key: float(v)}) for i, v in enumerate(values)]


def feed(rules, records, trainer="sft", facts=None):
    """Feed one record per update; return the Diagnostics and each update's result."""
    run = FakeRun(trainer, facts)
    diagnostics = Diagnostics(rules)
    changes = []
    for record in records:
        run.add([record])
        changes.append(diagnostics.update(run, NOW))
    return diagnostics, changes


def test_fires_after_for_stays_with_hysteresis_and_refires_as_the_same_finding():
    rules = [rule(for_points=2, clear_after=3)]
    diagnostics, changes = feed(rules, losses([2, 2, 2, 0, 0, 0, 2, 2, 0]))
    assert changes == [False, True, False, False, False, True, False, True, False]
    (finding,) = diagnostics.findings
    assert (finding.first_step, finding.fired_step, finding.last_step) == (2, 8, 8)
    assert finding.active and finding.seq == 2
    assert finding.message == "loss 2.0"


def test_warmup_delays_the_count_of_consecutive_points():
    diagnostics, changes = feed([rule(warmup=3, for_points=2)], losses([2, 2, 2, 2, 2]))
    assert changes.index(True) == 4  # points 3 and 4 (0-based) after a warm-up of 3


def test_a_clear_condition_gives_a_hysteresis_band():
    rules = [rule(when="loss > 1", clear="loss < 0.5")]
    diagnostics, changes = feed(rules, losses([2, 0.8, 0.8, 0.4, 0.8]))
    assert changes == [True, False, False, True, False]
    (finding,) = diagnostics.findings
    assert not finding.active and finding.last_step == 1


def test_a_suppressed_finding_is_folded_then_comes_back_on_its_own():
    big = rule("big", when="loss > 5", severity="high", suppresses=("small",), clear_after=2)
    small = rule("small", when="loss > 1", clear_after=50)
    diagnostics, _ = feed([small, big], losses([2, 2, 6, 6]))
    assert [f.rule_id for f in diagnostics.findings] == ["big"]
    assert diagnostics._findings["small"].superseded_by == "big"
    run = FakeRun("sft")
    diagnostics = Diagnostics([small, big])
    run.add(losses([2, 2, 6, 6, 2, 2, 2, 2]))
    diagnostics.update(run, NOW)
    by_id = {f.rule_id: f for f in diagnostics.findings}
    assert by_id["small"].active and by_id["small"].seq == 2 and by_id["small"].superseded_by is None
    assert not by_id["big"].active


def test_a_rule_that_fires_under_an_active_suppressor_never_appears():
    big = rule("big", when="loss > 5", severity="high", suppresses=("small",))
    small = rule("small", when="loss > 5", for_points=3)
    diagnostics, _ = feed([big, small], losses([6] * 6))
    assert [f.rule_id for f in diagnostics.findings] == ["big"]
    assert "small" not in diagnostics._findings


def test_nan_is_critical_at_its_step_and_does_not_poison_windows():
    records = [Record(s, None, {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-5}) for s in range(1, 41)]
    records[24] = Record(25, None, {"loss": 2.0, "grad_norm": math.nan, "learning_rate": 1e-5})
    mine = rule("mean_loss", when="mean(loss, 5) > 1.5 and mean(grad_norm, 5) > 0.5")
    diagnostics = diagnose("sft", records)
    (critical,) = [f for f in diagnostics.findings if f.severity == "critical"]
    assert critical.rule_id == "nonfinite_grad_norm" and critical.first_step == 25
    assert critical.active  # clears only after 20 finite points
    run = run_of("sft", records)
    own = Diagnostics([mine])
    own.update(run, NOW)
    (finding,) = own.findings
    assert finding.first_step == 5 and finding.last_step == 40 and finding.active


def test_findings_list_active_first_then_by_severity():
    rules = [rule("low_one", severity="low"), rule("high_one", severity="high", when="loss > 3", clear_after=1)]
    diagnostics, _ = feed(rules, losses([4, 2]))
    assert [(f.rule_id, f.active) for f in diagnostics.findings] == [("low_one", True), ("high_one", False)]


def test_nothing_new_means_no_change():
    run = run_of("sft", losses([2, 2]))
    diagnostics = Diagnostics([rule()])
    assert diagnostics.update(run, NOW) is True
    assert diagnostics.update(run, NOW) is False


def test_a_new_generation_replays_from_scratch():
    run = run_of("sft", losses([2, 2, 2]))
    diagnostics = Diagnostics([rule()])
    diagnostics.update(run, NOW)
    first = summary(diagnostics)
    run.generation += 1
    diagnostics.update(run, NOW)
    assert summary(diagnostics) == first and diagnostics.findings[0].seq == 1


def test_a_shrunk_series_replays_instead_of_misreading():
    run = run_of("sft", losses([2, 2, 2]))
    diagnostics = Diagnostics([rule()])
    diagnostics.update(run, NOW)
    rewritten = run_of("sft", losses([0, 0]))
    assert diagnostics.update(rewritten, NOW) is True
    assert diagnostics.findings == []


def test_facts_that_arrive_late_are_applied_to_the_whole_run():
    records = losses([0.7] * 30)
    needs_beta = rule(when="loss > beta")
    run = run_of("dpo", records)
    diagnostics = Diagnostics([needs_beta])
    diagnostics.update(run, NOW)
    assert diagnostics.findings == []
    run.facts = {"beta": 0.1}
    diagnostics.update(run, NOW)
    assert diagnostics.findings[0].first_step == 1


def test_run_scope_rule_follows_the_stall():
    run = run_of("sft", losses([1, 1]))
    stalled = next(r for r in RULES if r.id == "stalled")
    diagnostics = Diagnostics([stalled])
    diagnostics.update(run, NOW)
    run.state, run.quiet = "stalled", 900.0
    assert diagnostics.update(run, NOW) is True
    (finding,) = diagnostics.findings
    assert finding.active and finding.first_step == 2 and "15 min since step 2" in finding.message
    run.state, run.quiet = "running", None
    assert diagnostics.update(run, NOW) is True and not diagnostics.findings[0].active


def test_step_time_is_derived_from_wall_times_when_not_logged():
    times = np.cumsum(np.where(np.arange(200) < 100, 1.0, 5.0)) + 1.7e9
    records = [Record(s, float(t), {"loss": 1.0, "learning_rate": 1e-5}) for s, t in zip(range(1, 201), times)]
    diagnostics = diagnose("sft", records)
    (finding,) = [f for f in diagnostics.findings if f.rule_id == "throughput_collapse"]
    assert 105 <= finding.first_step <= 115 and finding.value == 5.0


def test_value_and_threshold_are_reported():
    run = simulate("dpo", "no_signal", 120, 0)
    (finding,) = [f for f in diagnose("dpo", run.records, run.facts).findings if f.rule_id == "dpo_no_signal"]
    assert abs(finding.value - math.log(2)) < 1e-6
    assert finding.threshold.role == "loss" and abs(finding.threshold.value - np.log(2)) < 1e-12
    assert finding.cause.startswith("learning_rate is 0") and finding.action.startswith("Set learning_rate")


def test_a_large_backlog_in_chunks_equals_step_by_step_feeding():
    run = simulate("sft", "grad_explosion", CHUNK_POINTS + 3000, 3)
    whole = diagnose("sft", run.records, run.facts)
    cuts = range(1, len(run.records), 997)
    assert summary(diagnose("sft", run.records, run.facts, cuts)) == summary(whole)
    assert any(f.rule_id == "grad_explosion" for f in whole.findings)


CASES = [(trainer, scenario) for trainer, scenarios in SCENARIOS.items() for scenario in scenarios]


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    seed=st.integers(0, 10_000),
    steps=st.integers(20, 200),
    cut_fractions=st.lists(st.floats(0, 1), max_size=12),
    single=st.booleans(),
)
def test_any_split_gives_the_same_findings(case, seed, steps, cut_fractions, single):
    trainer, scenario = case
    run = simulate(trainer, scenario, steps, seed)
    n = len(run.records)
    cuts = range(1, n) if single else sorted({int(f * n) for f in cut_fractions})
    whole = diagnose(trainer, run.records, run.facts)
    assert summary(diagnose(trainer, run.records, run.facts, cuts)) == summary(whole)


def test_derived_facts():
    facts = derive_facts("dpo", {
        "beta": 0.1,
        "max_steps": 1000,
        "config": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 8, "warmup_ratio": 0.1,
                   "logging_steps": 0.01, "bf16": True, "run_name": "x", "max_completion_length": None},
    })
    assert facts["batch_size"] == 32 and facts["lr_warmup_steps"] == 100 and facts["logging_steps"] == 10
    assert facts["config.bf16"] == 1.0 and "config.run_name" not in facts and "max_completion_length" not in facts
    assert facts["no_signal_loss"] == np.log(2)
    assert derive_facts("sft", {})["logging_steps"] == 1.0 and "batch_size" not in derive_facts("sft", {})


def test_no_signal_loss_per_loss_type():
    ln2 = math.log(2)
    assert no_signal_loss("dpo", None, None, {}) == ln2
    assert no_signal_loss("dpo", "hinge", 0.1, {}) == 1.0
    assert math.isclose(no_signal_loss("dpo", "ipo", 0.1, {}), 25.0)
    assert math.isclose(no_signal_loss("ipo", None, 0.5, {}), 1.0)
    assert no_signal_loss("dpo", ["sigmoid"], 0.1, {}) == ln2
    assert no_signal_loss("dpo", ["sigmoid", "sft"], 0.1, {}) is None
    assert no_signal_loss("dpo", "sigmoid", 0.1, {"rpo_alpha": 1.0}) is None
    assert no_signal_loss("kto", "kto", 0.1, {}) == 0.5
    assert no_signal_loss("kto", "kto", 0.1, {"desirable_weight": 1.0, "undesirable_weight": 1.33}) is None
    assert no_signal_loss("orpo", None, 0.1, {}) is None
