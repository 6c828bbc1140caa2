"""Rule-engine cost: microseconds per new step vs history length, and backlog throughput.

For each trainer family, one run gets the whole catalogue. Its history (1k, 100k, 1M steps, tiled
from a simulated run) is fed in one batch, then single-step updates are timed: the cost must be
flat in history length. Then a 10k-point backlog is diagnosed from cold, as at start-up.
Times are the benchmarking thread's CPU time: on a shared machine wall time mostly measures the
other processes.

    python bench/bench_rules.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from rlhf_tui.core.metrics import resolve_roles
from rlhf_tui.core.series import Series
from rlhf_tui.rules import Diagnostics, load_rules
from rlhf_tui.simulate import simulate

NOW = 2.0e9


class BenchRun:
    """What diagnosis reads of a run (rlhf_tui.rules.RunView), filled straight from numpy columns."""

    def __init__(self, trainer: str, facts: dict) -> None:
        self.trainer = trainer
        self.facts = facts
        self.generation = 0
        self.times = Series()
        self.crash = None
        self.last_step = None
        self.series: dict[str, Series] = {}

    def role(self, name: str) -> Series | None:
        return self.series.get(name)

    def lifecycle(self, now: float) -> str:
        return "running"

    def quiet_for(self, now: float) -> float | None:
        return None

    def extend(self, steps: np.ndarray, columns: dict[str, np.ndarray], times: np.ndarray) -> None:
        for role, values in columns.items():
            self.series.setdefault(role, Series()).extend(steps, values)
        self.times.extend(steps, times)
        self.last_step = int(steps[-1])


def columns_of(trainer: str, steps: int) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Role columns of a simulated healthy run, tiled (with fresh noise) to `steps` points."""
    sim = simulate(trainer, "healthy", 1000, seed=1)
    train = [r for r in sim.records if r.phase == "train"]
    roles = resolve_roles(trainer, train[0].values.keys())
    columns = {role: np.array([r.values[key] for r in train]) for role, key in roles.items()}
    seconds = np.diff([r.time for r in train], prepend=train[0].time - 1.0)
    reps = -(-steps // len(train))
    rng = np.random.default_rng(0)
    tiled = {role: np.tile(v, reps)[:steps] * (1 + 0.01 * rng.standard_normal(steps)) for role, v in columns.items()}
    times = 1.7e9 + np.cumsum(np.tile(seconds, reps)[:steps])
    return tiled, times, sim.facts


def time_single_steps(trainer: str, rules, history: int, repeats: int) -> float:
    columns, times, facts = columns_of(trainer, history + repeats)
    run = BenchRun(trainer, facts)
    diagnostics = Diagnostics(rules)
    steps = np.arange(1, history + repeats + 1, dtype=np.int64)
    run.extend(steps[:history], {r: v[:history] for r, v in columns.items()}, times[:history])
    diagnostics.update(run, NOW)
    samples = []
    for i in range(history, history + repeats):
        run.extend(steps[i : i + 1], {r: v[i : i + 1] for r, v in columns.items()}, times[i : i + 1])
        start = time.thread_time()
        diagnostics.update(run, NOW)
        samples.append(time.thread_time() - start)
    return statistics.median(samples) * 1e6


def time_backlog(trainer: str, rules, points: int) -> tuple[float, int]:
    columns, times, facts = columns_of(trainer, points)
    run = BenchRun(trainer, facts)
    run.extend(np.arange(1, points + 1, dtype=np.int64), columns, times)
    best = float("inf")
    for _ in range(7):
        diagnostics = Diagnostics(rules)
        start = time.thread_time()
        diagnostics.update(run, NOW)
        best = min(best, time.thread_time() - start)
    return best, len(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1M-step history")
    args = parser.parse_args()
    rules, errors = load_rules()
    assert not errors, errors
    histories = (1_000, 100_000) if args.quick else (1_000, 100_000, 1_000_000)
    print(f"{len(rules)} rules in the catalogue")
    print(f"{'trainer':8} " + " ".join(f"{h:>10,}" for h in histories) + "   (us per new step, median of 300)")
    for trainer in ("dpo", "grpo", "ppo", "sft"):
        costs = [time_single_steps(trainer, rules, history, 300) for history in histories]
        row = " ".join(f"{c:10.0f}" for c in costs)
        print(f"{trainer:8} {row}   ratio last/first {costs[-1] / costs[0]:.2f}")
    print()
    print(f"{'trainer':8} {'10k backlog':>12} {'points/s':>12} {'roles':>6} {'200 such runs':>14}")
    for trainer in ("dpo", "grpo", "ppo", "sft"):
        seconds, roles = time_backlog(trainer, rules, 10_000)
        print(f"{trainer:8} {seconds * 1e3:9.1f} ms {10_000 / seconds:12,.0f} {roles:6} {200 * seconds:12.2f} s")


if __name__ == "__main__":
    main()
