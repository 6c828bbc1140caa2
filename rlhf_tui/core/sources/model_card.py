"""The model card (`README.md`) transformers writes into an output dir: its front-matter tags name
the trainer (`tags: [generated_from_trainer, dpo, trl]`); the base model and datasets join the
run's config."""

from __future__ import annotations

import yaml

from rlhf_tui.core.config import flat_config
from rlhf_tui.core.metrics import normalize_trainer
from rlhf_tui.core.records import Update

MAX_FRONT_MATTER = 64 * 1024
CONFIG_KEYS = ("base_model", "datasets")


def read_model_card(data: bytes, name: str = "README.md") -> Update:
    update = Update(replace=True)
    text = data[:MAX_FRONT_MATTER].decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return update
    end = text.find("\n---", 3)
    if end < 0:
        return update
    try:
        front = yaml.safe_load(text[3:end])
    except (yaml.YAMLError, RecursionError):
        update.notes.append(f"{name}: front matter is not valid YAML")
        return update
    if not isinstance(front, dict):
        return update
    tags = front.get("tags")
    if isinstance(tags, list):
        for tag in tags:
            trainer = normalize_trainer(tag)
            if trainer and trainer != "unknown":
                update.facts["trainer"] = trainer
                update.facts["trainer_evidence"] = "model card"
                break
    base = front.get("base_model")
    if isinstance(base, str) and base.strip():
        update.facts["model_name"] = base.strip()
    config = flat_config({key: front.get(key) for key in CONFIG_KEYS})
    if config:
        update.facts["config"] = config
    return update
