"""The calibration table: every corpus run (tests/fixtures/corpus), what it should get, what it gets.

For each run: trainer, what happened, the expectation from labels.yaml, what rlhf-top says when the
run is watched live at its end (findings with severity and first step, status), and for each
expected problem the delay in steps from the step an expert could know (knowable_step) to the first
flag (negative: flagged earlier; "missed": never). A Markdown table, then a summary, which also
lists the high or critical findings a failure run got beyond its expectations (to be judged).

    python bench/bench_calibration.py [--width N]   # N: cut "what happened" to N characters (0: full)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import corpus_calibration as corpus  # noqa: E402


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def cut(text: str, width: int) -> str:
    return text if width <= 0 or len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=0, help="cut 'what happened' to this many characters")
    options = parser.parse_args()
    labels = corpus.load_labels()
    started = time.perf_counter()
    rows = []
    healthy_ok = healthy_total = met_total = expect_total = 0
    delays: list[int] = []
    missed: list[str] = []
    others: list[str] = []
    for name, label in labels.items():
        observed = corpus.diagnose(label)
        got = f"{observed.status_word}; {corpus.describe_findings(observed)}"
        if label.healthy:
            healthy_total += 1
            bad = corpus.medium_or_worse(observed)
            ok = not bad and observed.status_word == "Healthy"
            healthy_ok += ok
            expected = "healthy"
            verdict = "ok" if ok else "FALSE ALARM: " + ", ".join(f"{f.rule_id}:{f.severity}" for f in bad)
        else:
            parts, verdicts = [], []
            for expectation in label.expectations:
                expect_total += 1
                parts.append(f"{expectation.name} @{expectation.knowable_step}")
                if corpus.met(observed, expectation):
                    met_total += 1
                    steps = corpus.delay(observed, expectation)
                    if steps is not None:
                        delays.append(steps)
                    verdicts.append(f"{steps:+d}" if steps is not None else "ok")
                else:
                    verdicts.append("missed")
                    missed.append(f"{name}: {expectation.name}")
            expected = "; ".join(parts)
            verdict = ", ".join(verdicts)
            named = {rule for expectation in label.expectations for rule in expectation.rules}
            if any(expectation.status == "Stalled" for expectation in label.expectations):
                named.add("stalled")  # the finding behind that status
            others += [
                f"{name}: {f.rule_id}:{f.severity}@{f.first_step}"
                for f in observed.findings
                if f.rule_id not in named and corpus.at_least(f.severity, "high")
            ]
        rows.append((name, label.trainer, cut(label.what_happened, options.width), expected, got, verdict))
    elapsed = time.perf_counter() - started

    print("| run | trainer | what happened | expected (@ knowable step) | got (status; rule:severity@first step) | delay (steps) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(cell(c) for c in row) + " |")
    print()
    print(f"{len(rows)} runs diagnosed in {elapsed:.1f} s")
    print(f"healthy runs without a medium-or-worse finding: {healthy_ok}/{healthy_total}")
    print(f"expected problems caught: {met_total}/{expect_total}")
    if delays:
        print(
            f"delay from knowable step to first flag: median {statistics.median(delays):g}, "
            f"max {max(delays)}, min {min(delays)} steps"
        )
    for item in missed:
        print(f"missed: {item}")
    for item in others:
        print(f"also high or worse on a failure run (real, or a false alarm?): {item}")


if __name__ == "__main__":
    main()
