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

__version__ = "0.1.0"

__all__ = ["CourseError", "Collator", "format_example", "load_instruction_data", "load_text_data", "split_dataset",
           "tokenize_dataset", "generate", "load_model", "pick_device", "prepare_bundled_model",
           "evaluate_model", "compare_results", "plot_comparison", "get_llm", "LocalLLM", "LaminiLLM", "Retriever"]
