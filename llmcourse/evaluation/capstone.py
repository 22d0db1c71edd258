"""Notebook 05's capstone on your own file: the shipped example file, held-out questions, and the two baselines
a finetune must beat on them (few-shot prompting and retrieval over the training rows), all on the bundled model.

For a file of question/answer pairs there are no documentation pages to retrieve from, so the passages of the
retrieval baseline are the training rows themselves (question and answer): the honest "look it up" competitor
of a model that was trained on those same rows.
"""
from __future__ import annotations

from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import sized
from llmcourse.data.loading import shipped_dir
from llmcourse.evaluation.evaluate import question_set
from llmcourse.models.backends import FewShotLLM, LocalLLM
from llmcourse.models.retrieval import Passage, RetrievalLLM, Retriever

EXAMPLE_TASK = "harrowgate"  # a fictional lending library: 150 question/answer pairs in a two-column CSV


def example_task_file() -> Path:
    """The shipped example of a user's own file: llmcourse/datasets/harrowgate/qa.csv (question,answer columns)."""
    path = shipped_dir().parent / EXAMPLE_TASK / "qa.csv"
    if not path.is_file():
        raise CourseError(f"The example file is missing ({path}). Reinstall llmcourse from the repository.")
    return path


def row_passages(rows) -> list[Passage]:
    """Training rows (dicts or a Dataset with prompt/completion) as retrieval passages, one per row."""
    rows = list(rows)
    if not rows or not {"prompt", "completion"} <= set(rows[0]):
        raise CourseError("row_passages needs question/answer rows (prompt and completion columns), e.g. data['train'].")
    return [Passage(source=f"row {i + 1}", title=r["prompt"], text=r["completion"]) for i, r in enumerate(rows)]


def held_out_questions(data, split: str = "validation"):
    """The questions of the held-out `split` of `data` (a DatasetDict from load_instruction_data), as
    evaluate_model's `questions=`: every row for a learner, 3 in fast mode."""
    return question_set(data, split, limit=sized(None, 3))


def capstone_baselines(data, model, tokenizer, *, shots: int = 3, k: int = 2, max_new_tokens: int = 48) -> dict:
    """The two untrained competitors on the bundled model: {"few-shot": the first `shots` training rows as
    examples, "RAG": the `k` training rows most similar to each question in its prompt}."""
    train_rows = list(data["train"])
    if len(train_rows) < shots:
        raise CourseError(f"capstone_baselines(shots={shots}): the training split has only {len(train_rows)} rows.")
    base = LocalLLM(model, tokenizer, name="bundled model", max_new_tokens=max_new_tokens)
    examples = [(r["prompt"], r["completion"]) for r in train_rows[:shots]]
    return {"few-shot": FewShotLLM(base, examples),
            "RAG": RetrievalLLM(base, Retriever(row_passages(train_rows)), k=k)}
