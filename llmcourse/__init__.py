"""llmcourse: the machinery behind a Jupyter course on finetuning LLMs, offline on a laptop CPU.

Every public name is listed in `_EXPORTS` below and documented in docs/api.md. They load on first use, so
`import llmcourse` imports no torch, and `python -m llmcourse doctor` does not pay for the Trainer.
The package is layered (see README, "How the package is laid out"): core, plots, data, models, training,
evaluation, notebook, course, cli; each layer imports only the layers before it.
"""
import importlib

from llmcourse.core.errors import CourseError

__version__ = "0.1.0"

_EXPORTS = {
    "llmcourse.data.loading": ["load_instruction_data", "load_text_data", "shipped_dir", "split_dataset"],
    "llmcourse.data.checks": ["check_data"],
    "llmcourse.data.templates": ["format_example", "SYSTEM_PROMPT", "with_system_prompt"],
    "llmcourse.data.packing": ["packing_cross_talk"],
    "llmcourse.plots.masks": ["plot_loss_mask", "plot_packing_mask", "plot_kettlebird_split"],
    "llmcourse.data.tokenization": ["Collator", "tokenize_dataset"],
    "llmcourse.plots.lengths": ["plot_token_lengths"],
    "llmcourse.plots.figures": ["plot_learning_curve"],
    "llmcourse.plots.pipeline": ["plot_customisation_flows", "plot_finetuning_pipeline"],
    "llmcourse.core.hardware": ["cpu_summary", "matmul_gflops"],
    "llmcourse.models.loading": ["bundled_model_dir", "bundled_model_ready", "find_bundled_gguf", "load_model",
                                 "pick_device", "prepare_bundled_model"],
    "llmcourse.models.generation": ["generate", "render_prompt", "compare_system_prompts"],
    "llmcourse.models.backends": ["FewShotLLM", "LaminiLLM", "LaminiUnavailable", "LocalLLM", "few_shot_prompt",
                                  "get_llm", "try_lamini"],
    "llmcourse.models.retrieval": ["Passage", "RetrievalLLM", "Retriever", "load_passages", "rag_prompt"],
    "llmcourse.models.drafting": ["draft_qa_pairs", "qa_from_headings"],
    "llmcourse.training.config": ["TrainConfig"],
    "llmcourse.training.schedules": ["count_steps", "lr_schedule"],
    "llmcourse.training.trainer": ["train"],
    "llmcourse.training.runs": ["Run", "list_runs", "load_run", "runs_dir"],
    "llmcourse.training.sweeps": ["lr_sweep", "lr_range_test"],
    "llmcourse.training.quick": ["quick_finetune"],
    "llmcourse.training.export": ["export_gguf", "merge_lora"],
    "llmcourse.evaluation.metrics": ["exact_match", "key_facts", "score_answer"],
    "llmcourse.evaluation.evaluate": ["JUDGE_CAVEAT", "answer_loss", "evaluate_model", "judge_agreement", "judge_answers",
                                      "question_set"],
    "llmcourse.evaluation.export_check": ["verify_export"],
    "llmcourse.evaluation.compare": ["compare_results", "plot_comparison", "side_by_side"],
    "llmcourse.evaluation.uncertainty": ["Difference", "bootstrap_interval", "cohens_kappa", "compare_pair",
                                         "paired_difference", "wilson_interval"],
    "llmcourse.notebook.token_table": ["show_tokens"],
    "llmcourse.notebook.charts": ["compare_runs", "plot_schedule"],
    "llmcourse.notebook.widgets": ["training_panel"],
    "llmcourse.notebook.cli_process": ["run_cli"],
    "llmcourse.course.check": ["check"],
    "llmcourse.evaluation.abstention": ["abstains", "abstention_mix", "abstention_run", "abstention_share"],
    "llmcourse.training.scaling": ["finetune_cost", "learning_curve", "tokens_per_row"],
    "llmcourse.plots.token_loss": ["plot_style_vs_facts", "plot_token_losses"],
    "llmcourse.plots.lora": ["plot_lora"],
    "llmcourse.evaluation.probes": ["StyleFactProbe", "fact_token_mask"],
    "llmcourse.plots.abstention": ["plot_abstention"],
    "llmcourse.evaluation.capstone": ["capstone_baselines", "example_task_file", "held_out_questions", "row_passages"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name):
    if name in _WHERE:
        module = importlib.import_module(_WHERE[name])
        value = module if module.__name__.endswith("." + name) else getattr(module, name)  # `check` is a module
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'llmcourse' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_WHERE))


__all__ = ["CourseError", *_WHERE]
