"""Files written the way a live process writes them: lines appended and flushed one by one,
documents replaced in one step."""

from __future__ import annotations

import json
import os
from typing import Any

from rlhf_tui.core import runlog



class AppendedFile:
    """A log file a process appends to: every write is flushed at once, as a live monitor needs."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8", newline="")

    def write(self, text: str) -> None:
        self._file.write(text)
        self._file.flush()

    def write_json_line(self, obj: dict[str, Any]) -> None:
        self.write(runlog.line(obj))

    def close(self) -> None:
        self._file.close()


def replace_file(path: str, text: str) -> None:
    """Replace a file in one step, so a reader never sees half of it."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, f".{name}.partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(partial, path)


def write_document(path: str, obj: dict[str, Any], sort_keys: bool = False) -> None:
    replace_file(path, json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n")


