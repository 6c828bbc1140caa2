"""Messages that carry data to the UI thread from the threads that prepare it."""

from __future__ import annotations

from textual.message import Message

from rlhf_tui.ui.config_data import ConfigViewData
from rlhf_tui.ui.run_data import RunViewData


class BatchWaiting(Message):
    """The reader thread has changes for the UI (posted at most once until they are taken)."""


class RunViewReady(Message):
    """Charts and metric list of the run view, prepared by a worker."""

    def __init__(self, data: RunViewData) -> None:
        super().__init__()
        self.data = data


class ConfigViewReady(Message):
    """The configurations the config view asked for, prepared by a worker."""

    def __init__(self, data: ConfigViewData) -> None:
        super().__init__()
        self.data = data


class ExportFinished(Message):
    """The export worker is done: written, or why not (`exists`: the file is there, ask first)."""

    def __init__(self, run_path: str, target: str, destination: str, problem: str | None, exists: bool) -> None:
        super().__init__()
        self.run_path = run_path
        self.target = target
        self.destination = destination
        self.problem = problem
        self.exists = exists
