"""A type checker over the core and diagnosis: the run/diagnosis boundary is typed, not `Any`, and the
rule tests' stand-in run offers what diagnosis reads (tests/rules_fakerun.py)."""

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import needs

from rlhf_tui.core.run import Run
from rlhf_tui.report import build_report
from rlhf_tui.rules import Diagnosis, Diagnostics, RunView, run_status
from rlhf_tui.summary import run_row

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes_on_the_core_the_rules_and_the_stand_in_run():
    needs.module("mypy", "pip install -e '.[test]'")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "rlhf_tui/core", "rlhf_tui/rules", "tests/rules_fakerun.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("function", "parameter", "expected"),
    [
        (Diagnostics.update, "run", RunView),
        (run_status, "run", RunView),
        (run_row, "run", Run),
        (run_row, "diagnosis", Diagnosis),
        (build_report, "run", Run),
        (build_report, "diagnosis", Diagnosis),
    ],
)
def test_diagnosis_and_its_consumers_take_typed_runs(function, parameter, expected):
    hints = typing.get_type_hints(function)
    assert hints[parameter] is expected, f"{function.__qualname__}({parameter}: {hints[parameter]})"
    assert typing.Any not in hints.values()
    assert inspect.signature(function).parameters[parameter].kind is not inspect.Parameter.VAR_POSITIONAL
