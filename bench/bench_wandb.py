"""Points per second: rlhf-top's WandbReader vs parsing the same `.wandb` with wandb's own protobuf classes.

wandb 0.31 writes the file (offline mode, in a temporary directory): `--rows` history rows of
`--keys` metrics, TRL's way (`train/<key>` plus `train/global_step`, declared as the step metric).
wandb no longer ships a Python reader for `.wandb` files (`wandb.sdk.internal.datastore` is gone;
its reader is in the Go `wandb-core`), so the comparison is the framing split here followed by
`wandb_internal_pb2.Record.FromString` and `json.loads` of every history value: what any Python
reader built on wandb's own definitions has to do. Needs wandb installed.

    python bench/bench_wandb.py [--rows 100000] [--keys 20] [--chunk 1048576]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rlhf_tui.core.sources.wandb import WandbReader

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from wandb_records import payloads  # noqa: E402

WRITER = textwrap.dedent(
    """
    import sys, wandb
    rows, keys = int(sys.argv[1]), int(sys.argv[2])
    run = wandb.init(project="bench", name="bench")
    run.define_metric("train/global_step")
    run.define_metric("*", step_metric="train/global_step", step_sync=True)
    names = [f"train/metric_{i}" for i in range(keys)]
    for step in range(1, rows + 1):
        run.log({**{name: i + step / 1e3 for i, name in enumerate(names)}, "train/global_step": step})
    run.finish()
    """
)


def write_run(directory: Path, rows: int, keys: int) -> Path:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    home = directory / "home"
    env.update(
        HOME=str(home), WANDB_MODE="offline", WANDB_DIR=str(directory), WANDB_SILENT="true",
        WANDB_CACHE_DIR=str(home / "cache"), WANDB_CONFIG_DIR=str(home / "config"), WANDB_DATA_DIR=str(home / "data"),
        XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "config"),
    )
    subprocess.run([sys.executable, "-c", WRITER, str(rows), str(keys)], env=env, check=True, cwd=directory)
    (path,) = directory.glob("wandb/offline-run-*/run-*.wandb")
    return path


def split_only(path: Path) -> int:
    return len(payloads(path.read_bytes()))


def our_reader(path: Path, chunk: int) -> int:
    reader = WandbReader(path.name)
    points = 0
    with path.open("rb") as file:
        while data := file.read(chunk):
            points += sum(len(record.values) for record in reader.feed(data).records)
    return points


def wandb_protobuf(path: Path) -> int:
    from wandb.proto import wandb_internal_pb2

    points = 0
    for payload in payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record.FromString(payload)
        if record.WhichOneof("record_type") != "history":
            continue
        row = {}
        for item in record.history.item:
            row["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        points += sum(1 for key in row if not key.startswith("_") and key != "train/global_step")
    return points


def timed(function, *args) -> tuple[float, int]:
    start = time.perf_counter()
    points = function(*args)
    return time.perf_counter() - start, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--chunk", type=int, default=1 << 20, help="bytes per feed() call")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        seconds, path = timed(write_run, Path(directory), args.rows, args.keys)
        size_mb = path.stat().st_size / 1e6
        print(f"wandb wrote {args.rows} rows x {args.keys} keys, {size_mb:.1f} MB, in {seconds:.1f} s")
        rows = [
            ("split only (framing, no crc, no decoding)", *timed(split_only, path)),
            ("WandbReader", *timed(our_reader, path, args.chunk)),
            ("wandb_internal_pb2 + json.loads", *timed(wandb_protobuf, path)),
        ]

    expected = args.rows * args.keys
    baseline = rows[-1][1]
    print(f"{'reader':42} {'seconds':>8} {'points/s':>12} {'speed-up':>9}")
    for name, seconds, points in rows:
        shown = f"{points / seconds:12,.0f}" if name != rows[0][0] else f"{expected / seconds:12,.0f}"
        check = "" if name == rows[0][0] or points == expected else f"  (read {points} of {expected} points!)"
        print(f"{name:42} {seconds:8.2f} {shown} {baseline / seconds:8.2f}x{check}")


if __name__ == "__main__":
    main()
