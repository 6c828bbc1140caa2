"""`rlhf-top --once` and `--json` as a shell user runs them."""

import subprocess
import sys
from pathlib import Path

SAMPLE_RUNS = Path(__file__).resolve().parent.parent / "sample_runs"


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    """`rlhf-top --json runs | head -1`: the reader has gone before the output is written."""
    for mode in ("--json", "--once"):
        command = f"{sys.executable} -m rlhf_tui {mode} {SAMPLE_RUNS} | true"
        result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
        assert result.stderr == ""
