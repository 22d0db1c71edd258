"""llmcourse: the machinery behind a Jupyter course on finetuning LLMs, offline on a laptop CPU."""
from .errors import CourseError
from .data import load_instruction_data, load_text_data, split_dataset
from .compare import compare_results, plot_comparison
from .evaluate import evaluate_model
from .generation import generate
from .llm import LaminiLLM, LocalLLM, get_llm
from .models import load_model, pick_device, prepare_bundled_model
from .retrieval import Retriever
from .templates import format_example
from .tokenization import Collator, tokenize_dataset
from .config import TrainConfig
from .runs import Run, list_runs, load_run, runs_dir
from .train import train

__version__ = "0.1.0"

# Heavier training helpers (transformers' trainer, ipywidgets) load on first use.
_LAZY = {"lr_sweep": "sweeps", "lr_range_test": "sweeps", "compare_runs": "plotting", "training_panel": "widgets"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'llmcourse' has no attribute {name!r}")


__all__ = ["CourseError", "Collator", "format_example", "load_instruction_data", "load_text_data", "split_dataset",
           "tokenize_dataset", "generate", "load_model", "pick_device", "prepare_bundled_model",
           "evaluate_model", "compare_results", "plot_comparison", "get_llm", "LocalLLM", "LaminiLLM", "Retriever",
           "TrainConfig", "train", "Run", "runs_dir", "load_run", "list_runs", *_LAZY]
