"""A run's configuration: flat `key -> scalar` dicts from whatever carried it, and what differs between runs.

Sources hand over configs in their own shapes (a TRL `TrainingArguments` dict, W&B's nested config
tree, MLflow's params as strings, Hydra trees from verl); `flat_config` turns any of them into one
flat dict whose nested keys are joined with "." (W&B's own spelling), keeping scalars only. The run
model merges the configs of all its sources into `facts["config"]`.

Configs carry credentials now and then (`hub_token`, a tracker's `api_key`, OpenRLHF's `use_wandb`,
which holds the W&B key): the text of a key that names one is replaced by HIDDEN before it goes
anywhere (screen, `--json`, report, a browser tab).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from rlhf_tui.core.metrics import trainer_from_args

MAX_DEPTH = 8
MAX_KEYS = 5000
MAX_TEXT = 500

Scalar = bool | int | float | str

HIDDEN = "(hidden)"
# A key names a credential when its last part is one of these or ends with "_" and one of these
# (`pad_token` and `eos_token` are tokenizer settings, not credentials: a bare "token" must stand alone).
_SECRET_NAMES = ("token", "password", "passwd", "secret", "credential", "credentials", "use_wandb")
_SECRET_ENDINGS = (
    "api_key", "apikey", "private_key", "secret_key", "access_key", "access_key_id", "secret", "password",
    "hub_token", "auth_token", "access_token", "refresh_token", "hf_token", "api_token", "wandb_token",
)


def is_secret_key(key: str) -> bool:
    """Whether a config key names a credential: hub_token, WANDB_API_KEY, s3.secret, use_wandb (OpenRLHF)."""
    last = key.rsplit(".", 1)[-1].lower()
    return last in _SECRET_NAMES or any(last == end or last.endswith("_" + end) for end in _SECRET_ENDINGS)


def flat_config(tree: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Scalar]:
    """Scalars of a nested config, keys joined with "."; lists of scalars become their short text, None
    and other values are left out; bounded in depth, keys and text length."""
    flat: dict[str, Scalar] = {}
    skipped = frozenset(skip)
    _flatten(tree, "", flat, skipped, 0)
    return flat


def _flatten(tree: Mapping[str, Any], prefix: str, flat: dict[str, Scalar], skip: frozenset[str], depth: int) -> None:
    for key, value in tree.items():
        if len(flat) >= MAX_KEYS:
            return
        if not isinstance(key, str) or key in skip:
            continue
        name = prefix + key
        if isinstance(value, Mapping):
            if depth < MAX_DEPTH:
                _flatten(value, name + ".", flat, skip, depth + 1)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "" and is_secret_key(name):
            flat[name] = HIDDEN
        elif isinstance(value, str):
            flat[name] = value[:MAX_TEXT]
        elif isinstance(value, float) and not math.isfinite(value):
            flat[name] = str(value)  # configs go out as strict JSON (`--json`)
        elif isinstance(value, (bool, int, float)):
            flat[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(item, (bool, int, float, str)) for item in value):
            flat[name] = str(list(value))[:MAX_TEXT]


def facts_from_training_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Run facts a transformers/TRL `TrainingArguments` dict tells: max_steps, logging_steps, beta,
    loss_type, and the trainer when its config class has fields no other has."""
    facts: dict[str, Any] = {}
    trainer = trainer_from_args(args)
    if trainer is not None:
        facts["trainer"] = trainer
        facts["trainer_evidence"] = "training args"
    max_steps = whole_number(args.get("max_steps"))  # -1 means "derived from the epochs"
    if max_steps is not None:
        facts["max_steps"] = max_steps
    logging_steps = whole_number(args.get("logging_steps"))  # below 1 it is a fraction of the run
    if logging_steps is not None:
        facts["logging_steps"] = logging_steps
    beta = args.get("beta")
    if isinstance(beta, (int, float)) and not isinstance(beta, bool) and math.isfinite(beta):
        facts["beta"] = beta
    loss_type = args.get("loss_type")
    if isinstance(loss_type, list) and len(loss_type) == 1:  # TRL 1.x: DPOConfig.loss_type == ["sigmoid"]
        loss_type = loss_type[0]
    if isinstance(loss_type, str) and loss_type:
        facts["loss_type"] = loss_type
    return facts


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is a whole number of at least 1 (JSON may say 10 or 10.0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 1 else None


class _HasConfig(Protocol):
    facts: dict[str, Any]


def config_differences(runs: Sequence[_HasConfig]) -> dict[str, list[Any]]:
    """The config keys whose values are not the same in every run, with each run's value in the
    order the runs were given (None where a run does not have the key, which counts as different).

    Values compare as data: 1 and 1.0 are equal, and MLflow's text params equal the numbers and
    booleans other trackers log ("1e-05" == 1e-05, "True" == True).
    """
    configs = [run.facts.get("config") or {} for run in runs]
    keys = sorted({key for config in configs for key in config})
    differing: dict[str, list[Any]] = {}
    for key in keys:
        values = [config.get(key) for config in configs]
        if len({_comparable(value) for value in values}) > 1:
            differing[key] = values
    return differing


_TEXT_CONSTANTS = {"True": True, "False": False, "None": None}  # MLflow logs params as str(value)


def _comparable(value: Any) -> tuple[str, Any]:
    """A tagged value: True and 1.0 must not compare equal, NaN must equal NaN."""
    if isinstance(value, str) and value in _TEXT_CONSTANTS:
        value = _TEXT_CONSTANTS[value]
    elif isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return ("text", value)
    if value is None or isinstance(value, bool):
        return ("constant", value)
    if isinstance(value, float) and math.isnan(value):
        return ("number", "nan")
    if isinstance(value, (int, float)):
        try:
            return ("number", float(value))
        except OverflowError:
            return ("number", str(value))
    return ("other", repr(value))
