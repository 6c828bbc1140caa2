"""Console-log reader throughput on a synthetic transformers 5.x log.

Each line is what `python -u train.py | tee train.log` captures per logged step: the bar redraw
after the previous dict, tqdm.write's blank clearing segment and a DPO log dict with string values.
Compared in one process with merely splitting the same bytes into lines and `\\r` segments.

    python bench/bench_console_log.py [n_dicts]
"""

from __future__ import annotations

import sys
import time

from rlhf_tui.core.sources.console_log import ConsoleLogReader

CHUNK = 64 * 1024
CLEAR = " " * 46


def synthetic_log(n: int) -> bytes:
    parts = [f"\r  0%|          | 0/{n} [00:00<?, ?it/s]"]
    for step in range(1, n + 1):
        percent = step * 100 // n
        parts.append(
            f"\r{CLEAR}\r{{'loss': '{0.6931 - step * 1e-6:.4g}', 'grad_norm': '0.3417', "
            f"'learning_rate': '0.003', 'entropy': '3.753', 'num_tokens': '{336 * step}', "
            "'logits/chosen': '0.03012', 'logits/rejected': '0.0323', 'mean_token_accuracy': "
            "'0.04412', 'rewards/chosen': '0.02665', 'rewards/rejected': '0.026', "
            "'rewards/accuracies': '0.5', 'rewards/margins': '0.0006589', 'logps/chosen': "
            f"'-16.13', 'logps/rejected': '-16.15', 'epoch': '{step / 32:.4g}'}}\n"
            f"\r{percent:3d}%|\u2588         | {step}/{n} [00:20<00:01, 43.15it/s]"
        )
    parts.append("\n")
    return "".join(parts).encode()


def split_only(data: bytes) -> int:
    segments = 0
    for start in range(0, len(data), CHUNK):
        for line in data[start : start + CHUNK].split(b"\n"):
            segments += len(line.split(b"\r"))
    return segments


def read_all(data: bytes) -> int:
    reader = ConsoleLogReader("bench.log")
    records = 0
    for start in range(0, len(data), CHUNK):
        records += len(reader.feed(data[start : start + CHUNK]).records)
    return records


def best_of(runs: int, function, data: bytes) -> tuple[float, float, int]:
    """Best wall time and best CPU time (the box is shared: wall time suffers from neighbours)."""
    best_wall = best_cpu = float("inf")
    result = 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function(data)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = synthetic_log(n)
    lines = data.count(b"\n")
    split_wall, split_cpu, _ = best_of(5, split_only, data)
    read_wall, read_cpu, records = best_of(5, read_all, data)
    assert records == n, records
    print(f"{n} log dicts, {lines} lines, {len(data) / 1e6:.1f} MB, best of 5")
    for name, wall, cpu in (
        ("split only", split_wall, split_cpu),
        ("ConsoleLogReader", read_wall, read_cpu),
    ):
        print(
            f"{name:17} wall {wall:6.3f} s {lines / wall:11,.0f} lines/s"
            f"   cpu {cpu:6.3f} s {lines / cpu:11,.0f} lines/s"
        )
    print(f"reader / split (cpu): {read_cpu / split_cpu:.1f}x")


if __name__ == "__main__":
    main()
