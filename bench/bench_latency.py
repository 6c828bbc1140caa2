"""Live latency, headless: a line appended to a watched file -> the run model shows the new step.

    python bench/bench_latency.py [--appends 100] [--quiet-runs 50]

The path a live update takes in the TUI minus the drawing: watchfiles (inotify, 50 ms debounce)
reports the path, the session reads the new bytes, the run model and the rules update. The
append -> screen figure (with drawing) is in bench/bench_tui.py. Budget: under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

from rlhf_tui.session import open_session
from rlhf_tui.core.watch import ChangeFeed

from rlhf_tui.core import runlog


def record_line(step: int) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
    return runlog.line(runlog.step(step, stamp, {"dpo_loss": 0.69, "win_rate": 0.5}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--quiet-runs", type=int, default=50, help="other runs being watched")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for index in range(args.quiet_runs + 1):
            os.makedirs(os.path.join(root, f"run-{index:03d}"))
            with open(os.path.join(root, f"run-{index:03d}", "metrics.jsonl"), "w") as handle:
                handle.write(runlog.line(runlog.header("dpo", f"run-{index:03d}", "2026-11-26T01:00:00+00:00")) + record_line(1))
        session = open_session([root])
        session.load()
        live = next(r for r in session.runs() if r.name == "run-000")
        path = os.path.join(live.path, "metrics.jsonl")
        woke = threading.Event()
        feed = ChangeFeed([root], on_change=woke.set)
        feed.start()
        time.sleep(0.5)
        latencies = []
        try:
            for step in range(2, args.appends + 2):
                woke.clear()
                start = time.perf_counter()
                with open(path, "a") as handle:
                    handle.write(record_line(step))
                while live.last_step != step:
                    if not woke.wait(2.0):
                        raise SystemExit(f"no change reported for step {step}")
                    woke.clear()
                    session.refresh(feed.drain())
                latencies.append((time.perf_counter() - start) * 1000)
                time.sleep(0.05)
        finally:
            feed.stop()
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"append -> model updated ({args.quiet_runs} other runs watched, {len(latencies)} appends)")
    print(f"  median {statistics.median(latencies):.1f} ms   p95 {p95:.1f} ms   max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    main()
