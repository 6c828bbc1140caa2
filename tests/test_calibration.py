"""Calibration of the rule catalogue on the corpus of real TRL runs (tests/fixtures/corpus).

Every run is opened with the public API, as if watched live at its end (corpus_calibration.py says
how the clock and the process check are set), and held to its label in labels.yaml:

- a healthy run never raises a finding of medium or worse, not even one that later cleared;
- a failure run gets each expected finding at its minimum severity or worse, or ends with the
  expected status word.

These tests are meant to fail until the rules are calibrated: do not weaken a label to make one pass.
`python bench/bench_calibration.py` prints the whole table (expected, got, delay in steps).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import corpus_calibration as corpus  # noqa: E402

from rlhf_tui.rules import load_rules  # noqa: E402

LABELS = corpus.load_labels()
HEALTHY = sorted(name for name, label in LABELS.items() if label.healthy)
EXPECTED = [
    pytest.param(name, expectation, id=f"{name}: {expectation.name}")
    for name, label in sorted(LABELS.items())
    for expectation in label.expectations
]


@pytest.fixture(scope="module")
def observed():
    cache: dict[str, corpus.Observed] = {}

    def diagnose(name: str) -> corpus.Observed:
        if name not in cache:
            cache[name] = corpus.diagnose(LABELS[name])
        return cache[name]

    return diagnose


def test_every_corpus_run_has_a_label_and_every_label_a_run():
    runs = {p.name for p in corpus.CORPUS.iterdir() if p.is_dir()}
    assert runs == set(LABELS)


def test_labels_name_known_rules_severities_and_status_words():
    known = {rule.id for rule in load_rules(None)[0]} | set(corpus.NEW_RULE_IDS)
    for name, label in LABELS.items():
        assert label.what_happened, name
        assert label.healthy != bool(label.expectations), name
        for expectation in label.expectations:
            assert expectation.knowable_step >= 0, name
            if expectation.status is not None:
                assert expectation.status in corpus.STATUS_WORDS and not expectation.rules, name
            else:
                assert expectation.rules and set(expectation.rules) <= known, (name, expectation.rules)
                assert expectation.min_severity in corpus.SEVERITIES, name


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_run_never_raises_a_medium_or_worse_finding(name, observed):
    run = observed(name)
    flagged = [f"{f.rule_id} ({f.severity}, first at step {f.first_step})" for f in corpus.medium_or_worse(run)]
    assert flagged == [], f"{name}: {LABELS[name].what_happened}"
    assert run.status_word == "Healthy"


@pytest.mark.parametrize("name, expectation", EXPECTED)
def test_a_failure_run_gets_its_expected_finding_or_status(name, expectation, observed):
    run = observed(name)
    assert corpus.met(run, expectation), (
        f"{name}: expected {expectation.name} (knowable at step {expectation.knowable_step}); "
        f"got status {run.status_word!r} and findings {corpus.describe_findings(run)}. "
        f"What happened: {LABELS[name].what_happened}"
    )
