"""Points per second: rlhf-top's TensorBoardReader vs tensorboard's own EventAccumulator.

Writes one events file (steps x tags scalar events, the way transformers logs: one event per tag)
with tensorboard's own record writer into a temporary directory, then reads it in one process:
merely splitting the records (no checksum, no decoding), our reader fed in chunks as the tailer
would (with google-crc32c when installed, and with its pure-Python fallback), and tensorboard's
EventAccumulator keeping every point. Needs tensorboard installed.

    python bench/bench_tensorboard.py [--steps 100000] [--tags 10] [--chunk 1048576]
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from rlhf_tui.core.sources import tensorboard as source


def write_events(path: Path, steps: int, tags: int) -> None:
    names = [f"train/metric_{i}" for i in range(tags)]
    with path.open("wb") as file:
        writer = RecordWriter(file)
        writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
        for step in range(1, steps + 1):
            for i, name in enumerate(names):
                value = summary_pb2.Summary.Value(tag=name, simple_value=i + step / 1e3)
                summary = summary_pb2.Summary(value=[value])
                event = event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary)
                writer.write(event.SerializeToString())


def split_only(path: Path) -> int:
    data = path.read_bytes()
    payloads = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        payloads.append(data[pos + 12 : pos + 12 + length])
        pos += 16 + length
    return len(payloads) - 1  # the file_version event holds no point


def our_reader(path: Path, chunk: int) -> int:
    reader = source.TensorBoardReader(path.name)
    points = 0
    with path.open("rb") as file:
        while data := file.read(chunk):
            points += sum(len(record.values) for record in reader.feed(data).records)
    return points


def event_accumulator(path: Path) -> int:
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0 keeps every point
    accumulator.Reload()
    return sum(len(accumulator.Scalars(tag)) for tag in accumulator.Tags()["scalars"])


@contextmanager
def python_crc32c() -> Iterator[None]:
    """Runs the reader on its fallback even where google-crc32c is installed."""
    installed = source.crc32c
    source.crc32c = source.crc32c_python
    try:
        yield
    finally:
        source.crc32c = installed


def timed(function, *args) -> tuple[float, int]:
    start = time.perf_counter()
    points = function(*args)
    return time.perf_counter() - start, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=1 << 20, help="bytes per feed() call")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.out.tfevents.bench"
        seconds, _ = timed(write_events, path, args.steps, args.tags)
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.steps} steps x {args.tags} tags, {size_mb:.1f} MB, in {seconds:.1f} s")
        rows = [("split only (no crc, no decoding)", *timed(split_only, path))]
        if source.crc32c is not source.crc32c_python:
            rows.append(("TensorBoardReader, google-crc32c", *timed(our_reader, path, args.chunk)))
        with python_crc32c():
            rows.append(("TensorBoardReader, pure-Python crc32c", *timed(our_reader, path, args.chunk)))
        rows.append(("tensorboard EventAccumulator", *timed(event_accumulator, path)))

    expected = args.steps * args.tags
    baseline = rows[-1][1]
    print(f"{'reader':38} {'seconds':>8} {'points/s':>12} {'speed-up':>9}")
    for name, seconds, points in rows:
        check = "" if points == expected else f"  (read {points} of {expected} points!)"
        print(f"{name:38} {seconds:8.2f} {points / seconds:12,.0f} {baseline / seconds:8.2f}x{check}")


if __name__ == "__main__":
    main()
