"""Cold start: `rlhf-top --once` and `--json` over a sweep, wall time and peak memory, and memory per point.

    python bench/bench_coldstart.py [--runs 10 200 1000] [--steps 10000] [--keys 15]

Writes N PTT-format DPO runs of S steps each into a temporary directory: with `--keys 15` as Post-
Training Toolkit writes a DPO sweep (bench/sweep.py: 15 metrics and an ISO timestamp a line), with
`--keys 6` as a lean `RunLogger` DPO run logs them. Then runs `rlhf-top --once` and `rlhf-top --json`
on it, each in a fresh interpreter (start-up included; peak RSS is the main process's, the history
workers hold one file's columns at a time), and, in-process, the same load to count stored points
and their bytes. Budgets (issue 12): 200 runs x 10k steps `--json` < 3 s; 1,000 runs x 10k steps
loaded < 30 s in < 1.5 GB; under 40 bytes per stored point.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import sweep
from rlhf_tui.core import runlog
from rlhf_tui.session import open_session


def write_lean_runs(root: str, runs: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    header = runlog.line(runlog.header("dpo", "bench", "2026-11-26T00:00:00.000000+00:00", writer=runlog.OWN_WRITER))
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


WITH_PEAK = (
    "import resource, sys\n"
    "from rlhf_tui.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def time_command(mode: str, root: str) -> tuple[float, float]:
    """Wall time of `rlhf-top MODE ROOT` in a fresh interpreter, and that process's peak RSS."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", WITH_PEAK, mode, root],
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
    parser.add_argument("--keys", type=int, choices=(6, 15), default=15, help="metrics a line")
    args = parser.parse_args()
    print(f"{args.keys} metrics a line")
    print(f"{'runs':>5} {'steps':>7} {'points':>11} {'--once wall s':>14} {'peak RSS MiB':>13} {'--json wall s':>14} {'peak RSS MiB':>13} {'bytes/point':>12}")
    for runs in args.runs:
        with tempfile.TemporaryDirectory() as root:
            if args.keys == 15:
                sweep.write_sweep(root, runs, args.steps)
            else:
                write_lean_runs(root, runs, args.steps)
            once, once_peak = time_command("--once", root)
            as_json, json_peak = time_command("--json", root)
            points, nbytes = stored_bytes(root)
            print(
                f"{runs:>5} {args.steps:>7} {points:>11,} {once:>14.2f} {once_peak:>13.0f} {as_json:>14.2f} {json_peak:>13.0f} {nbytes / points:>12.1f}"
            )


if __name__ == "__main__":
    main()
