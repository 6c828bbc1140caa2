"""What a simulated run is and how its process logs: the formats it writes, its host, how it dies,
and the plan of its metric stream (from `rlhf_tui.simulate`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rlhf_tui.core.records import Record
from rlhf_tui.simulate import simulate

CONSOLE = "console"  # train.log
PTT = "ptt"  # Post-Training Toolkit's files, in `RunPlan.ptt_dir`
RLHF_TOP = "rlhf-top"  # rlhf-top's RunLogger files, in the run directory
CHECKPOINTS = "checkpoints"  # checkpoint-N/trainer_state.json and README.md at every save

VERSIONS = {"python": "3.11.7", "torch": "2.13.0+cu128", "transformers": "5.24.0", "trl": "1.16.0"}
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
END_DELAY = 1.5  # seconds from the last logged step to the end of the run (summary, crash)

# transformers logs the loss, grad_norm and learning_rate first and adds the epoch last.
_LOGGED_FIRST = ("loss", "grad_norm", "learning_rate", "eval_loss")


def iso_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="microseconds")


def as_logged(values: dict[str, float]) -> dict[str, float]:
    """A record's values in the order a TRL trainer logs them."""
    first = {key: values[key] for key in _LOGGED_FIRST if key in values}
    rest = {key: value for key, value in values.items() if key not in first and key != "epoch"}
    last = {"epoch": values["epoch"]} if "epoch" in values else {}
    return {**first, **rest, **last}



@dataclass(frozen=True)
class Host:
    """Where the simulated process runs: its host name and pid go into the metadata."""

    name: str
    pid: int


@dataclass(frozen=True)
class Death:
    """How a run dies after its last logged step: the exit reason PTT and RunLogger record and the
    traceback Python prints, ending with the exception line."""

    exit_reason: str  # "exception", "oom"
    traceback: str

    @property
    def exception(self) -> str:
        return self.traceback.rstrip("\n").rsplit("\n", 1)[-1]



@dataclass(frozen=True)
class RunPlan:
    """One simulated run: its metric stream and what the process writes about it.

    records: the logged steps (raw TRL keys; eval records keep their `eval_` keys), from `simulate`.
    config: the training arguments (max_steps, learning_rate, per_device_train_batch_size, ...).
    stops_after: the last step logged before the run dies of `death`, or is killed when there is
    no death (it vanishes without a word, as under SIGKILL); None: it runs to the end and finishes.
    """

    name: str
    trainer: str
    records: tuple[Record, ...]
    config: dict[str, Any]
    formats: tuple[str, ...]
    stops_after: int | None = None
    death: Death | None = None
    ptt_dir: str = "ptt"
    save_steps: int = 50
    model: str = MODEL

    @property
    def max_steps(self) -> int:
        return self.config["max_steps"]

    def training_args(self) -> dict[str, Any]:
        return {"output_dir": f"/data/runs/{self.name}", **self.config, "save_steps": self.save_steps, "seed": 42}


def simulated_plan(
    name: str, trainer: str, scenario: str, steps: int, seed: int, formats: tuple[str, ...], **options: Any
) -> RunPlan:
    """A plan whose metric stream and training arguments come from `simulate`."""
    run = simulate(trainer, scenario, steps, seed)
    return RunPlan(name, trainer, tuple(run.records), dict(run.facts["config"]), formats, **options)


