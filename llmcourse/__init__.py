"""llmcourse: the machinery behind a Jupyter course on finetuning LLMs, offline on a laptop CPU.

The public names load on first use, so `python -m llmcourse doctor` or `generate` does not pay for
importing datasets, pandas or the Trainer it does not need.
"""
import importlib

from .errors import CourseError

__version__ = "0.1.0"

_EXPORTS = {
    "data": ["load_instruction_data", "load_text_data", "shipped_dir", "split_dataset"],
    "datachecks": ["check_data"],
    "data_plots": ["plot_token_lengths"],
    "compare": ["compare_results", "plot_comparison", "quick_finetune", "side_by_side"],
    "evaluate": ["JUDGE_CAVEAT", "answer_loss", "evaluate_model", "judge_answers", "question_set"],
    "metrics": ["exact_match", "key_facts", "score_answer"],
    "generation": ["generate", "render_prompt"],
    "hardware": ["cpu_summary", "matmul_gflops"],
    "llm": ["FewShotLLM", "LaminiLLM", "LaminiUnavailable", "LocalLLM", "few_shot_prompt", "get_llm", "try_lamini"],
    "models": ["bundled_model_dir", "bundled_model_ready", "find_bundled_gguf", "load_model", "pick_device",
               "prepare_bundled_model"],
    "retrieval": ["Passage", "RetrievalLLM", "Retriever", "load_passages", "rag_prompt"],
    "qa_drafting": ["draft_qa_pairs", "qa_from_headings"],
    "templates": ["format_example"],
    "tokenization": ["Collator", "tokenize_dataset"],
    "token_table": ["show_tokens"],
    "config": ["TrainConfig"],
    "schedules": ["count_steps", "lr_schedule"],
    "runs": ["Run", "list_runs", "load_run", "runs_dir"],
    "sweeps": ["lr_sweep", "lr_range_test"],
    "plotting": ["compare_runs", "plot_schedule"],
    "widgets": ["training_panel"],
    "cli_process": ["run_cli"],
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
