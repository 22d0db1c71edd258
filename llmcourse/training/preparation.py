"""Getting a run's model and data ready: load, add LoRA, switch activation checkpointing; load, subset, tokenize."""
from __future__ import annotations

from llmcourse.core.errors import CourseError
from llmcourse.data.loading import load_instruction_data
from llmcourse.data.templates import with_system_prompt
from llmcourse.data.tokenization import tokenize_dataset
from llmcourse.models.loading import base_model, load_model, set_system_prompt
from llmcourse.training.config import TrainConfig
from llmcourse.training.lora import add_lora
from llmcourse.training.placement import load_device


def prepare_model(config: TrainConfig, model=None, tokenizer=None):
    """(model, tokenizer) ready to train: loaded from config.model unless given, wrapped with LoRA when config.lora.

    With the chat template the tokenizer is a copy whose default system turn is config.system_prompt (the
    training rows are rendered with it, and it is saved with the run), and the model remembers the prompt too,
    so `generate` uses it even with another tokenizer."""
    if model is None:
        model, tokenizer = load_model(config.model, device=load_device(config.device))
    if tokenizer is None:
        raise CourseError("train(model=...) also needs tokenizer=... (the one load_model returned with it).")
    if config.template == "chat" and config.system_prompt and getattr(tokenizer, "chat_template", None):
        tokenizer = with_system_prompt(tokenizer, config.system_prompt)
        set_system_prompt(model, config.system_prompt)
    if config.lora and not hasattr(model, "peft_config"):
        model = add_lora(model, config)
    elif not config.lora and hasattr(model, "peft_config"):
        raise CourseError("This model already has LoRA adapters but config.lora is False. Pass lora=True, or load a "
                          "fresh model for full finetuning.")
    # Trainer switches checkpointing on too, but only once training starts: the cost estimate runs before that
    if config.activation_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif getattr(base_model(model), "is_activation_checkpointing", False):  # left on by an earlier run
        model.activation_checkpointing_disable()
    return model, tokenizer


def prepare_data(config: TrainConfig, tokenizer, data=None, verbose: bool = True):
    """{"train": Dataset, "validation": Dataset or None} of input_ids/attention_mask/labels, subset as configured."""
    import datasets

    if isinstance(data, datasets.Dataset):
        data = {"train": data}
    elif isinstance(data, dict):  # also a DatasetDict
        data = {k: v if isinstance(v, datasets.Dataset) else datasets.Dataset.from_list(list(v)) for k, v in data.items()}
    else:  # a name, a file or folder, a list of rows, a DataFrame; eval holds out the same validation rows
        data = load_instruction_data(config.data if data is None else data, validation=config.validation,
                                     seed=config.seed, skip_bad_rows=config.skip_bad_rows, verbose=verbose)
    if "train" not in data:
        raise CourseError(f"The training data has no 'train' split (it has {list(data)}).")
    out = {}
    for split, limit in (("train", config.max_train_samples), ("validation", config.max_eval_samples)):
        ds = data.get(split)
        if ds is None or len(ds) == 0:
            out[split] = None
            continue
        if limit is not None and len(ds) > limit:
            ds = ds.shuffle(seed=config.seed).select(range(limit)) if split == "train" else ds.select(range(limit))
        if "input_ids" not in ds.column_names:
            ds = tokenize_dataset(ds, tokenizer, template=config.template, max_length=config.max_length,
                                  answer_only=config.answer_only, packing=config.packing and split == "train",
                                  seed=config.seed, verbose=verbose)
        keep = [c for c in ("input_ids", "attention_mask", "labels", "position_ids") if c in ds.column_names]
        out[split] = ds.select_columns(keep)
    return out
