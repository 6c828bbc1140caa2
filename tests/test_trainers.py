"""Every trainer TRL ships (trl and trl.experimental) is named as itself from each source that names it:
its trainer and config class names (RunLogger, PTT), its model-card tag, and its training arguments
(TensorBoard's args text, PTT's metadata for a trainer PTT does not know)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import warnings

import pytest

import needs

from rlhf_tui.core.metrics import TRAINER_KINDS, normalize_trainer, rules_trainer, trainer_from_args

trl = needs.module("trl", "pip install -e '.[trl]'")
transformers = needs.module("transformers", "pip install -e '.[trl]'")


def trl_trainers() -> list[tuple[type, type | None]]:
    """(trainer class, its config class) for every Trainer subclass in trl and trl.experimental."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "APIs here are unstable"
        import trl.experimental

    modules = ["trl"] + [f"trl.experimental.{m.name}" for m in pkgutil.iter_modules(trl.experimental.__path__)]
    found: dict[str, tuple[type, type | None]] = {}
    for name in modules:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except ImportError:  # an experimental trainer needing an optional package
            continue
        for _, trainer in inspect.getmembers(module, inspect.isclass):
            if issubclass(trainer, transformers.Trainer) and trainer is not transformers.Trainer:
                config = getattr(module, trainer.__name__.replace("Trainer", "Config"), None)
                found[trainer.__name__] = (trainer, config)
    return sorted(found.values(), key=lambda pair: pair[0].__name__)


TRAINERS = trl_trainers()


@pytest.mark.parametrize("trainer, config", TRAINERS, ids=[t.__name__ for t, _ in TRAINERS])
def test_each_trl_trainer_is_named_as_itself_from_every_source(trainer, config):
    name = normalize_trainer(trainer.__name__)
    assert name in TRAINER_KINDS, f"{trainer.__name__} is not a known trainer"
    assert name != "unknown"
    tags = [normalize_trainer(tag) for tag in getattr(trainer, "_tag_names", []) if tag != "trl"]
    assert tags == [name]
    if config is not None:
        assert normalize_trainer(config.__name__) == name
        fields = {field.name for field in dataclasses.fields(config)}
        # GMPO's arguments are GRPO's: the arguments alone can only tell that it is diagnosed as GRPO.
        assert rules_trainer(trainer_from_args(fields) or name) == rules_trainer(name)
