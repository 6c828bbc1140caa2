"""Cold start: `rlhf-top --once` over many runs, wall time and peak memory, and memory per point.

    python bench/bench_coldstart.py [--runs 10 200 1000] [--steps 10000]

Writes N PTT-format DPO runs of S steps each (6 metrics a step, as a lean `RunLogger` DPO run logs
them) into a temporary directory, then runs `rlhf-top --once` on it as a subprocess (start-up
included) and, in-process, the same load to count stored points and their bytes.
Budget: 200 runs x 10k steps listed with insights in under 2 s; under 40 bytes per stored point.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from rlhf_tui.core import runlog
from rlhf_tui.session import open_session


def write_runs(root: str, runs: int, steps: int) -> int:
    rng = np.random.default_rng(0)
    header = runlog.line(runlog.header("dpo", "bench", "2026-11-26T00:00:00.000000+00:00", writer=runlog.OWN_WRITER))
    total = 0
    step_numbers = np.arange(1, steps + 1)
    for index in range(runs):
        run_dir = os.path.join(root, f"dpo-{index:04d}")
        os.makedirs(run_dir)
        progress = step_numbers / steps
        loss = 0.6931 - 0.3 * progress + rng.normal(0, 0.03, steps)
        accuracy = np.clip(0.5 + 0.3 * progress + rng.normal(0, 0.08, steps), 0, 1)
        margin = 1.5 * progress + rng.normal(0, 0.1, steps)
        chosen = -0.2 * progress + rng.normal(0, 0.05, steps)
        grad = 1.0 + rng.normal(0, 0.1, steps)
        lines = [header]
        for i in range(steps):
            stamp = f"2026-11-26T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.000000+00:00"
            metrics = {
                "loss": round(float(loss[i]), 5),
                "rewards/accuracies": round(float(accuracy[i]), 4),
                "rewards/margins": round(float(margin[i]), 5),
                "rewards/chosen": round(float(chosen[i]), 5),
                "grad_norm": round(float(grad[i]), 4),
                "learning_rate": 5e-7,
            }
            lines.append(runlog.line(runlog.step(i + 1, stamp, metrics)))
        lines.append(runlog.line(runlog.footer("bench", steps, stamp)))
        with open(os.path.join(run_dir, runlog.METRICS_FILE), "w") as handle:
            handle.write("".join(lines))
        total += steps
    return total


ONCE_WITH_PEAK = (
    "import resource, sys\n"
    "from rlhf_tui.cli import main\n"
    "code = main(['--once', sys.argv[1]])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def time_once(root: str) -> tuple[float, float]:
    """Wall time of `rlhf-top --once ROOT` in a fresh interpreter, and that process's peak RSS."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", ONCE_WITH_PEAK, root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(result.stderr)
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 1024


def stored_bytes(root: str) -> tuple[int, int]:
    session = open_session([root])
    session.load()
    runs = session.runs()
    return sum(r.points() for r in runs), sum(r.nbytes() for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10, 200, 1000])
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{'runs':>5} {'steps':>7} {'points':>11} {'--once wall s':>14} {'peak RSS MiB':>13} {'bytes/point':>12}")
    for runs in args.runs:
        with tempfile.TemporaryDirectory() as root:
            write_runs(root, runs, args.steps)
            wall, peak = time_once(root)
            points, nbytes = stored_bytes(root)
            print(f"{runs:>5} {args.steps:>7} {points:>11,} {wall:>14.2f} {peak:>13.0f} {nbytes / points:>12.1f}")


if __name__ == "__main__":
    main()
