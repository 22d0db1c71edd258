"""llmcourse: the machinery behind a Jupyter course on finetuning LLMs, offline on a laptop CPU.

The public names load on first use, so `python -m llmcourse doctor` or `generate` does not pay for
importing datasets, pandas or the Trainer it does not need.
"""
import importlib

from .errors import CourseError

__version__ = "0.1.0"

_EXPORTS = {
    "data": ["load_instruction_data", "load_text_data", "split_dataset"],
    "compare": ["compare_results", "plot_comparison"],
    "evaluate": ["evaluate_model"],
    "generation": ["generate"],
    "llm": ["LaminiLLM", "LocalLLM", "get_llm"],
    "models": ["load_model", "pick_device", "prepare_bundled_model"],
    "retrieval": ["Retriever"],
    "templates": ["format_example"],
    "tokenization": ["Collator", "tokenize_dataset"],
    "config": ["TrainConfig"],
    "runs": ["Run", "list_runs", "load_run", "runs_dir"],
    "sweeps": ["lr_sweep", "lr_range_test"],
    "plotting": ["compare_runs"],
    "widgets": ["training_panel"],
    "abstention": ["abstains", "abstention_mix", "abstention_run", "abstention_share"],
    "scaling": ["finetune_cost", "learning_curve", "plot_learning_curve", "tokens_per_row"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'llmcourse' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_WHERE))


# `train` is both a submodule and its main function: bind the function now, or the first
# `import llmcourse.train` elsewhere would leave the package attribute pointing at the module.
from .train import train  # noqa: E402

__all__ = ["CourseError", "train", *_WHERE]
