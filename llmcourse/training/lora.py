"""LoRA: small low-rank adapters trained instead of all the weights, and the record that lets a saved adapter
find its base model again."""
from __future__ import annotations

import json
from pathlib import Path

from llmcourse.core.paths import BUNDLED
from llmcourse.models.loading import bundled_model_dir
from llmcourse.training.config import TrainConfig


def add_lora(model, config: TrainConfig):
    """`model` wrapped by peft with adapters as the config says (r, alpha, dropout, target modules)."""
    from peft import LoraConfig, get_peft_model

    targets = config.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                                            lora_dropout=config.lora_dropout, target_modules=targets))


def record_adapter_base(folder: Path, model, config: TrainConfig) -> None:
    """Name the adapter's base so load_model("runs/<name>") can rebuild it: the bundled alias, a folder or a hub id."""
    name = model.base_model.model.config.name_or_path or config.model
    name = BUNDLED if Path(name) == bundled_model_dir() else name
    path = folder / "adapter_config.json"
    adapter = json.loads(path.read_text())
    adapter["base_model_name_or_path"] = name
    path.write_text(json.dumps(adapter, indent=2))
