"""`rlhf-top watch` as it runs for days: its CPU while every run is quiet, and how long an event takes
to reach a webhook.

    python bench/bench_watch.py [--runs 200] [--steps 1000] [--settle 30] [--seconds 60] [--events 10]

Makes RUNS quiet run directories (PTT metrics.jsonl, STEPS steps each, finished an hour ago; as
bench_tui.py makes them), starts `rlhf-top watch` on them with Apprise's JSON webhook pointed at a
receiver on 127.0.0.1, and measures:

- CPU of the watcher process (all threads, from /proc) over SECONDS, once all has been quiet for SETTLE;
- event -> notification: EVENTS runs, one at a time, get a crash (PTT's postmortem.json); the time from
  writing it to the receiver holding the message. It includes the notifier's collection window
  (notify.COLLECT_SECONDS), which waits for other runs failing at once, to send one digest for them.

Budget (issue 15): under 1% of one core with 200 quiet runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
from receiver import Receiver  # noqa: E402 - the tests' webhook receiver

from bench_tui import _cpu, make_runs  # noqa: E402

from rlhf_tui.notify import COLLECT_SECONDS  # noqa: E402


def wait_for_line(log: Path, text: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise SystemExit(f"the watcher never logged {text!r}:\n{log.read_text()}")
        time.sleep(0.05)


def crash(directory: str, step: int) -> None:
    postmortem = {"exit_reason": "exception", "last_step": step, "traceback": "Traceback (most recent call last):\nRuntimeError: bench\n"}
    temporary = os.path.join(directory, ".postmortem.tmp")
    with open(temporary, "w") as file:
        json.dump(postmortem, file)
    os.rename(temporary, os.path.join(directory, "postmortem.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000, help="steps already logged per run")
    parser.add_argument("--settle", type=float, default=30.0, help="quiet seconds before CPU is measured")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long CPU is measured")
    parser.add_argument("--events", type=int, default=10, help="crashes whose delivery is timed")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rlhf-top-bench-watch-"))
    root = workdir / "runs"
    root.mkdir()
    process = None
    try:
        make_runs(str(root), args.runs, 0, args.steps)
        log = workdir / "watch.log"
        with Receiver() as receiver, log.open("w") as log_file:
            env = dict(os.environ, XDG_STATE_HOME=str(workdir / "state"))
            command = [sys.executable, "-m", "rlhf_tui", "watch", str(root), "--notify", receiver.apprise_url]
            started = time.perf_counter()
            process = subprocess.Popen(command, env=env, stderr=log_file, stdout=subprocess.DEVNULL)
            wait_for_line(log, "first look")
            cold = time.perf_counter() - started
            time.sleep(args.settle)
            stat = f"/proc/{process.pid}/stat"
            before, begun = _cpu(stat), time.monotonic()
            time.sleep(args.seconds)
            quiet = 100 * (_cpu(stat) - before) / (time.monotonic() - begun)

            latencies = []
            names = sorted(os.listdir(root))[: args.events]
            for count, name in enumerate(names, start=1):
                written = time.perf_counter()
                crash(str(root / name), args.steps)
                receiver.wait_for(count)
                latencies.append(time.perf_counter() - written)
                time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        print(f"{args.runs} quiet runs x {args.steps} steps; watcher exit code {code}")
        print(f"{'watch cold start (first look)':<34} {cold:7.2f} s")
        print(f"{'CPU when all quiet':<34} {quiet:7.2f} % of one core   (over {args.seconds:.0f} s, after {args.settle:.0f} s quiet)")
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(
            f"{'event -> notification':<34} median {statistics.median(ordered):.2f} s   p95 {p95:.2f} s   max {ordered[-1]:.2f} s"
            f"   (n={len(ordered)}; {COLLECT_SECONDS:.1f} s of it the collection window)"
        )
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
