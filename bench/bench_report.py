"""Wall time of `rlhf-top report RUN_DIR` on a long run, start-up included (budget: 0.5 s at 10k steps).

Writes a PTT-format `metrics.jsonl` (header, one DPO record per step with PTT's key names, the
run-average summary row, footer) into a temporary directory, then runs the installed `rlhf-top report`
as a subprocess several times and prints the best and median wall time, twice: with Python's bytecode
cache (as after `pip install`; kept under a temporary PYTHONPYCACHEPREFIX, written by one untimed run)
and without it (PYTHONDONTWRITEBYTECODE=1, as some sandboxes set: every module is compiled at every
start). `--breakdown` also times, in one process, the imports, loading the run (read + rules) and
building + rendering the report.

    python bench/bench_report.py [--steps 10000] [--repeat 7] [--breakdown]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlhf_tui.core import runlog


def write_run(run_dir: Path, steps: int) -> None:
    ptt = run_dir / "ptt"
    ptt.mkdir(parents=True)
    rng = random.Random(0)
    t0 = 1_795_000_000.0
    lines = [runlog.line(runlog.header("dpo", "bench", "2026-11-18T00:00:00+00:00"))]
    losses = []
    for step in range(1, steps + 1):
        progress = 1 - math.exp(-step / (steps / 5))
        margin = 0.8 * progress + rng.gauss(0, 0.05)
        chosen = 0.3 * progress + rng.gauss(0, 0.02)
        loss = math.log1p(math.exp(-margin)) + rng.gauss(0, 0.02)
        losses.append(loss)
        metrics = {
            "reward_mean": round(chosen, 6),
            "reward_std": round(margin, 6),
            "dpo_loss": round(loss, 6),
            "win_rate": round(min(1.0, max(0.0, 0.5 + 0.4 * progress + rng.gauss(0, 0.08))), 4),
            "reward_margin": round(margin, 6),
            "logps_chosen": round(-120 + 10 * progress + rng.gauss(0, 1), 4),
            "logps_rejected": round(-121 - 20 * progress + rng.gauss(0, 1), 4),
            "rewards_chosen": round(chosen, 6),
            "rewards_rejected": round(chosen - margin, 6),
        }
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 + step))
        lines.append(runlog.line(runlog.step(step, stamp, metrics)))
    lines.append(runlog.line(runlog.step(steps, stamp, {"dpo_loss": sum(losses) / steps})))
    lines.append(runlog.line(runlog.footer("bench", steps, stamp)))
    (ptt / runlog.METRICS_FILE).write_text("".join(lines))


def command() -> list[str]:
    script = shutil.which("rlhf-top", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "rlhf_tui"]


def environment(pycache: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def time_cli(run_dir: Path, repeat: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run([*command(), "report", str(run_dir)], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1) or not result.stdout.startswith("## RLHF Run Diagnostic Report"):
            sys.exit(f"rlhf-top report failed ({result.returncode}): {result.stderr}")
    return times


def breakdown(run_dir: Path, env: dict[str, str]) -> None:
    code = f"""
import time
t0 = time.perf_counter()
from rlhf_tui.session import open_session
from rlhf_tui.report import build_report, render_markdown
t1 = time.perf_counter()
session = open_session([{str(run_dir)!r}])
session.load()
(run,) = session.runs()
t2 = time.perf_counter()
text = render_markdown(build_report(run, session.diagnosis(run)))
t3 = time.perf_counter()
print(f"  imports {{t1 - t0:.3f}} s, load + rules {{t2 - t1:.3f}} s, report {{(t3 - t2) * 1000:.1f}} ms")
"""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    print(result.stdout.rstrip() + f" (process total {time.perf_counter() - start:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--breakdown", action="store_true", help="time imports, load and report in one process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "dpo_long"
        write_run(run_dir, args.steps)
        size = (run_dir / "ptt" / "metrics.jsonl").stat().st_size
        print(f"run: {args.steps} steps, metrics.jsonl {size / 1e6:.1f} MB")
        print(f"command: {' '.join(command())} report DIR")
        cached = environment(Path(tmp) / "pycache")
        time_cli(run_dir, 1, cached)  # writes the bytecode cache
        for what, env in (("bytecode cached", cached), ("no bytecode cache", environment(None))):
            times = time_cli(run_dir, args.repeat, env)
            best, median = min(times), statistics.median(times)
            print(f"rlhf-top report, {what}: best {best:.3f} s, median {median:.3f} s (budget 0.5 s)")
            if args.breakdown:
                breakdown(run_dir, env)
        baseline = time_python_startup(args.repeat)
        print(f"python -c pass: best {min(baseline):.3f} s (interpreter start-up alone)")


def time_python_startup(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
