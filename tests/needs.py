"""Tests that need a real component (an optional library, a server program) skip without it on a
laptop, saying what to install; under CI (`CI=true`) a missing component fails instead, so CI always
runs them all."""

from __future__ import annotations

import importlib
import shutil
from types import ModuleType

import pytest

from search import IN_CI


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def module(name: str, install: str) -> ModuleType:
    """`import name`, or skip (fail under CI) saying `install`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"{name} is not installed ({install})")
        raise  # not reached: _missing skips or fails


def command(name: str, install: str) -> str:
    """The path of program `name`, or skip (fail under CI) saying `install`."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is not on PATH ({install})")
    return path
