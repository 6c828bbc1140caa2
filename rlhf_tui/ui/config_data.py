"""What the config view shows, copied out of the live runs by a worker thread (never the UI thread).

One run: every key of its configuration. Several runs: their configurations side by side, by default
only the keys whose values differ (the first question when one run of a sweep misbehaves): first the
keys every run has, then those only some runs have (a run logged with fewer arguments differs in
every key it lacks, which says less).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf_tui.core.config import config_differences
from rlhf_tui.core.display import format_config_value
from rlhf_tui.core.run import Run
from rlhf_tui.core.text import one_line

VALUE_LIMIT = 120  # characters of one value (a long string is cut with …)


@dataclass(frozen=True)
class ConfigRow:
    key: str
    values: tuple[str | None, ...]  # per run, as text; None where the run does not have the key
    differs: bool


@dataclass(frozen=True)
class ConfigViewData:
    paths: tuple[str, ...]
    names: tuple[str, ...]
    rows: tuple[ConfigRow, ...]  # keys every run has, then the others, each sorted; only_differences: differing ones
    keys: int  # keys in any of the runs
    differing: int  # of which differ between the runs
    partial: int  # of which some runs do not have
    only_differences: bool
    without_config: tuple[str, ...]  # names of the runs that recorded no configuration


def prepare_config(runs: list[Run], only_differences: bool) -> ConfigViewData:
    """Call with the session lock held. `only_differences` matters only for several runs."""
    configs: list[dict[str, Any]] = [dict(run.facts.get("config") or {}) for run in runs]
    partial = {key for config in configs for key in config if any(key not in other for other in configs)}
    keys = sorted({key for config in configs for key in config}, key=lambda key: (key in partial, key))
    differing = set(config_differences(runs)) if len(runs) > 1 else set()
    shown = [key for key in keys if key in differing] if only_differences and len(runs) > 1 else keys
    rows = tuple(
        ConfigRow(
            one_line(key, VALUE_LIMIT),
            tuple(_text(config[key]) if key in config else None for config in configs),
            key in differing,
        )
        for key in shown
    )
    return ConfigViewData(
        paths=tuple(run.path for run in runs),
        names=tuple(one_line(run.name, 60) for run in runs),
        rows=rows,
        keys=len(keys),
        differing=len(differing),
        partial=len(partial),
        only_differences=only_differences and len(runs) > 1,
        without_config=tuple(one_line(run.name, 60) for run, config in zip(runs, configs) if not config),
    )


def _text(value: Any) -> str:
    return one_line(format_config_value(value), VALUE_LIMIT)
