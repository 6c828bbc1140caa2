"""JSONL ingest into the run model vs merely reading the bytes, side by side in one process.

    python bench/bench_ingest.py [--lines 10000 100000 1000000]

For each size it writes a PTT-format `metrics.jsonl` (one run of bench/sweep.py: 15 metrics and an
ISO timestamp a line) and a lean generic JSONL (`{"step", "loss", "reward", "kl"}`), then times, on
the same bytes: read + split into lines; a `json.loads` loop into a list; a `msgspec.json.decode`
loop (the fastest generic parser tried, ahead of orjson); and rlhf-top end to end (discovery,
tailing with its byte budget, reader, run model) on one core: a big log's history is read in a
worker process when there are cores for it, which bench_coldstart measures over a sweep. The ratio column is each time over
read + split: the budget is rlhf-top within 5x, and at least 400k lines/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time

import msgspec

import sweep
from rlhf_tui.core.monitor import Monitor


def ptt_lines(count: int) -> bytes:
    return "".join(sweep.run_lines(0, count)).encode()


def lean_lines(count: int) -> bytes:
    rng = random.Random(0)
    out = [
        json.dumps({"step": s, "loss": round(rng.random(), 6), "reward": round(rng.random(), 6), "kl": round(rng.random(), 6)}) + "\n"
        for s in range(1, count + 1)
    ]
    return "".join(out).encode()


decode = msgspec.json.Decoder().decode


def best_of(repeats: int, function) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure(label: str, data: bytes, filename: str, lines: int, repeats: int) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        os.mkdir(run_dir)
        path = os.path.join(run_dir, filename)
        with open(path, "wb") as handle:
            handle.write(data)

        def read_split():
            with open(path, "rb") as handle:
                handle.read().split(b"\n")

        def json_loop():
            with open(path, "rb") as handle:
                [json.loads(line) for line in handle.read().split(b"\n") if line]

        def msgspec_loop():
            with open(path, "rb") as handle:
                [decode(line) for line in handle.read().split(b"\n") if line]

        def rlhf_top():
            monitor = Monitor([tmp], workers=0)  # one core: the reader's own speed
            monitor.scan()
            monitor.catch_up()
            (run,) = monitor.visible_runs()
            assert run.last_step == lines, run.last_step

        baseline = best_of(repeats, read_split)
        rows = []
        for name, function in (
            ("read + split", read_split),
            ("json.loads loop", json_loop),
            ("msgspec decode loop", msgspec_loop),
            ("rlhf-top end to end", rlhf_top),
        ):
            seconds = baseline if function is read_split else best_of(repeats, function)
            rows.append((label, lines, name, seconds, lines / seconds, seconds / baseline))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'format':<10} {'lines':>9}  {'method':<22} {'seconds':>8} {'lines/s':>11} {'x read+split':>13}")
    for count in args.lines:
        repeats = args.repeats if count <= 100_000 else 1
        for label, data, filename in (
            ("PTT", ptt_lines(count), "metrics.jsonl"),
            ("lean", lean_lines(count), "log.jsonl"),
        ):
            for row in measure(label, data, filename, count, repeats):
                print(f"{row[0]:<10} {row[1]:>9}  {row[2]:<22} {row[3]:>8.3f} {row[4]:>11,.0f} {row[5]:>13.1f}")


if __name__ == "__main__":
    main()
