"""Coverage-guided fuzzing (atheris / libFuzzer) of the console-log, TensorBoard and W&B readers.

Not run in CI (tests/test_fuzz.py is the bounded, hypothesis-based version). Each input is fed to
a fresh reader in pieces split where the input says, and every resulting Update goes into a `Run`,
as the monitor would do: any exception out of the reader or the run model is a finding.

    pip install atheris
    python bench/fuzz_readers.py console -atheris_runs=200000
    python bench/fuzz_readers.py tensorboard -max_total_time=600 /tmp/tb-corpus

Arguments after the target go to libFuzzer (`-help=1` lists them); a directory argument is a
corpus that libFuzzer grows. Seed it with the real files to start from realistic input:

    mkdir -p /tmp/tb-corpus && cp tests/fixtures/real_runs/*/runs/*/events.out.tfevents.* /tmp/tb-corpus

For TensorBoard and W&B, half of the inputs are framed into TFRecords (or W&B's 32 KiB-block
chunks) with valid checksums first, so that the protobuf decoder sees the bytes instead of the
checksum check rejecting them. A crash is
written by libFuzzer as `crash-<sha1>` in the current directory; replay it with
`python bench/fuzz_readers.py tensorboard crash-<sha1>`.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from wandb_records import frame as wandb_framed  # noqa: E402

with atheris.instrument_imports():
    from rlhf_tui.core.run import Run, SourceFile
    from rlhf_tui.core.sources.console_log import ConsoleLogReader
    from rlhf_tui.core.sources.tensorboard import TensorBoardReader, masked_crc32c
    from rlhf_tui.core.sources.wandb import WandbReader

TARGETS = {
    "console": ("console", ConsoleLogReader),
    "tensorboard": ("tensorboard", TensorBoardReader),
    "wandb": ("wandb", WandbReader),
}


def framed(payloads: list[bytes]) -> bytes:
    out = []
    for payload in payloads:
        length = struct.pack("<Q", len(payload))
        out += [length, struct.pack("<I", masked_crc32c(length)), payload, struct.pack("<I", masked_crc32c(payload))]
    return b"".join(out)


def make_one_input(kind: str, factory):
    def one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        cuts = sorted(provider.ConsumeIntInRange(0, 4096) for _ in range(provider.ConsumeIntInRange(0, 4)))
        if kind in ("tensorboard", "wandb") and provider.ConsumeBool():
            pieces = [provider.ConsumeBytes(provider.ConsumeIntInRange(0, 200)) for _ in range(provider.ConsumeIntInRange(1, 8))]
            stream = framed(pieces) if kind == "tensorboard" else wandb_framed(pieces)
        else:
            stream = provider.ConsumeBytes(provider.remaining_bytes())
        reader = factory("fuzzed")
        run = Run("/fuzz/run", "/fuzz")
        source = SourceFile("/fuzz/run/fuzzed", kind, kind)
        bounds = [0, *(min(cut, len(stream)) for cut in cuts), len(stream)]
        for start, end in zip(bounds, bounds[1:]):
            run.apply(source, reader.feed(stream[start:end]))
        run.lifecycle()

    return one_input


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer arguments]")
    kind, factory = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], make_one_input(kind, factory))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
