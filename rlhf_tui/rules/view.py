"""What diagnosis reads of a run: the typed boundary between the core's run model and the rules.

`rlhf_tui.core.run.Run` is one; the rule tests use a small stand-in. Time enters only through `now`
(seconds since the epoch), so a caller with its own clock gets answers for that clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rlhf_tui.core.records import Crash
from rlhf_tui.core.series import Series


class RunView(Protocol):
    @property
    def trainer(self) -> str:
        """A name from core.metrics.TRAINERS ("unknown" when nothing tells)."""

    @property
    def facts(self) -> Mapping[str, object]:
        """Run facts (core.records.FACT_KEYS): max_steps, beta, loss_type, config, ..."""

    @property
    def generation(self) -> int:
        """Grows when the run's history was replaced (a restarted log): diagnosis starts over."""

    @property
    def times(self) -> Series:
        """Wall time (s) of each logged train step."""

    @property
    def last_step(self) -> int | None: ...

    @property
    def crash(self) -> Crash | None: ...

    def role(self, role: str) -> Series | None:
        """The series that carries a metric role ("loss", "kl", "eval_loss", ...), if the run logs it."""

    def lifecycle(self, now: float) -> str:
        """"running", "finished", "crashed", "killed", "stalled", "stopped" or "gone", as of `now`."""

    def quiet_for(self, now: float) -> float | None:
        """Seconds since the newest step was logged, as of `now`."""
