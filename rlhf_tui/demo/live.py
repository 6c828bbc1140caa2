"""`rlhf-top --demo`: simulated runs training live in a temporary directory."""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from rlhf_tui.demo.plans import CHECKPOINTS, CONSOLE, PTT, RLHF_TOP, Death, Host, RunPlan, simulated_plan
from rlhf_tui.demo.tracebacks import KTO_FRAMES, cuda_oom_traceback
from rlhf_tui.demo.writer import RunWriter



def demo_plans(seed: int = 0) -> list[tuple[RunPlan, float]]:
    """The demo's runs and the seconds between their steps: within a minute at that pace a
    newcomer sees them train, the stuck, collapsing, runaway and NaN runs flagged and a crash land."""
    return [
        (simulated_plan("dpo-healthy", "dpo", "healthy", 400, seed, (CONSOLE, PTT, CHECKPOINTS)), 0.30),
        (simulated_plan("dpo-stuck-at-ln2", "dpo", "no_signal", 400, seed + 1, (RLHF_TOP,)), 0.25),
        (
            simulated_plan(
                "grpo-reward-variance-collapse", "grpo", "variance_collapse", 200, seed + 2, (CONSOLE, CHECKPOINTS)
            ),
            0.30,
        ),
        (simulated_plan("ppo-kl-runaway", "ppo", "kl_runaway", 200, seed + 3, (RLHF_TOP,)), 0.35),
        (simulated_plan("sft-nan-loss", "sft", "nan_loss", 200, seed + 4, (CONSOLE, PTT)), 0.25),
        (
            simulated_plan(
                "kto-cuda-oom",
                "kto",
                "healthy",
                300,
                seed + 5,
                (CONSOLE, RLHF_TOP),
                stops_after=80,
                death=Death("oom", cuda_oom_traceback("/home/ml/recipes/train_kto.py", KTO_FRAMES)),
            ),
            0.40,
        ),
    ]


@dataclass
class _LiveRun:
    writer: RunWriter
    period: float
    due: float  # time.monotonic() of its next step
    ended: bool = False


class LiveDemo:
    """`with LiveDemo() as root:` a temporary directory in which simulated runs train live.

    A background thread appends a step to each run every 0.2-0.5 s (the runs staggered), divided by
    `speed` (tests run it faster). The runs carry this process's host and pid, so they read as
    alive. On exit the thread is stopped and joined and the directory removed, also when the body
    raised. A failure inside the thread stops the simulation and is kept in `error` (not logged:
    the terminal belongs to the TUI).
    """

    def __init__(self, speed: float = 1.0, seed: int = 0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._plans = demo_plans(seed)
        self.root: str | None = None
        self.error: Exception | None = None
        self._random = random.Random(seed)
        self._runs: list[_LiveRun] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        self.root = tempfile.mkdtemp(prefix="rlhf-top-demo-")
        try:
            host = Host(socket.gethostname(), os.getpid())
            now = time.monotonic()
            for index, (plan, period) in enumerate(self._plans):
                writer = RunWriter(os.path.join(self.root, plan.name), plan, host)
                writer.start(time.time())
                first = now + (0.5 + 0.3 * index) * period / self.speed
                self._runs.append(_LiveRun(writer, period / self.speed, first))
            self._thread = threading.Thread(target=self._simulate, name="rlhf-top-demo", daemon=True)
            self._thread.start()
        except BaseException:
            self._clean_up()
            raise
        return self.root

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._clean_up()

    def _simulate(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for run in self._runs:
                    if run.ended or run.due > now:
                        continue
                    if run.writer.next_record is None:
                        run.writer.end(time.time())
                        run.ended = True
                    else:
                        run.writer.log_next(time.time())
                        run.due += run.period * self._random.uniform(0.8, 1.2)
                waiting = [run.due for run in self._runs if not run.ended]
                if not waiting:
                    return
                self._stop.wait(max(0.0, min(waiting) - time.monotonic()))
        except Exception as error:  # noqa: BLE001 - a full disk, say: stop writing, keep what went wrong
            self.error = error

    def _clean_up(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for run in self._runs:
            run.writer.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

